// Prometheus text metrics: requests by route and status, latency histogram, gauges read on scrape.

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type Histogram = { counts: number[]; sum: number; count: number };

const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
/**
 * Methods and route patterns are a small fixed set: each is escaped once, not on every request. A
 * plain Map read (no LRU bookkeeping on every request); past the cap a label is escaped each time.
 */
const ESCAPED_MAX = 1024;
const escaped = new Map<string, string>();
const label = (v: string) => {
  let out = escaped.get(v);
  if (out === undefined) {
    out = escapeLabel(v);
    if (escaped.size < ESCAPED_MAX) escaped.set(v, out);
  }
  return out;
};

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<string, Histogram>();
  private rateLimited = 0;

  constructor(private readonly gauges: Record<string, { help: string; read: () => number }> = {}) {}

  /** `route` is the matched route pattern (never the raw path), so label cardinality stays bounded. */
  observe(method: string, route: string, status: number, seconds: number): void {
    const key = `method="${label(method)}",route="${label(route)}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    const hkey = `method="${label(method)}",route="${label(route)}"`;
    let h = this.latency.get(hkey);
    if (!h) this.latency.set(hkey, (h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }));
    for (let i = BUCKETS.length - 1; i >= 0 && seconds <= BUCKETS[i]!; i--) h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  countRateLimited(): void {
    this.rateLimited++;
  }

  render(): string {
    const out: string[] = [];
    out.push("# HELP fmsg_api_requests_total HTTP requests by route and status.", "# TYPE fmsg_api_requests_total counter");
    for (const [k, v] of this.requests) out.push(`fmsg_api_requests_total{${k}} ${v}`);
    out.push(
      "# HELP fmsg_api_request_duration_seconds Request latency.",
      "# TYPE fmsg_api_request_duration_seconds histogram",
    );
    for (const [k, h] of this.latency) {
      BUCKETS.forEach((b, i) => out.push(`fmsg_api_request_duration_seconds_bucket{${k},le="${b}"} ${h.counts[i]}`));
      out.push(`fmsg_api_request_duration_seconds_bucket{${k},le="+Inf"} ${h.count}`);
      out.push(`fmsg_api_request_duration_seconds_sum{${k}} ${h.sum}`);
      out.push(`fmsg_api_request_duration_seconds_count{${k}} ${h.count}`);
    }
    out.push("# HELP fmsg_api_rate_limited_total Requests refused by the rate limit.", "# TYPE fmsg_api_rate_limited_total counter");
    out.push(`fmsg_api_rate_limited_total ${this.rateLimited}`);
    for (const [name, g] of Object.entries(this.gauges)) {
      out.push(`# HELP ${name} ${g.help}`, `# TYPE ${name} gauge`, `${name} ${g.read()}`);
    }
    return `${out.join("\n")}\n`;
  }
}
