// Small client of our API for setting scenarios up (create, attach, send), failing loudly.

export async function expectStatus(res: Response, status: number, what: string): Promise<string> {
  const text = await res.text();
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status} ${text.slice(0, 300)}`);
  return text;
}

export type Draft = { from: string; to: string[]; topic?: string; data?: string; type?: string };

export async function createDraft(url: string, token: string, d: Draft): Promise<number> {
  const res = await fetch(`${url}/fmsg`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ version: 1, from: d.from, to: d.to, topic: d.topic ?? "", type: d.type ?? "text/plain", data: d.data ?? "" }),
  });
  return (JSON.parse(await expectStatus(res, 201, "POST /fmsg")) as { id: number }).id;
}

export async function attach(url: string, token: string, id: number, filename: string, bytes: Uint8Array, type: string): Promise<void> {
  const form = new FormData();
  form.append("file", new File([bytes], filename, { type }));
  const res = await fetch(`${url}/fmsg/${id}/attach`, { method: "POST", headers: { Authorization: `Bearer ${token}` }, body: form });
  await expectStatus(res, 201, `POST /fmsg/${id}/attach ${filename}`);
}

export async function send(url: string, token: string, id: number): Promise<void> {
  const res = await fetch(`${url}/fmsg/${id}/send`, { method: "POST", headers: { Authorization: `Bearer ${token}` } });
  await expectStatus(res, 200, `POST /fmsg/${id}/send`);
}

export async function getText(url: string, path: string, token: string): Promise<string> {
  const res = await fetch(`${url}${path}`, { headers: { Authorization: `Bearer ${token}` } });
  return expectStatus(res, 200, `GET ${path}`);
}
