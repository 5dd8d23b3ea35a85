// Prometheus text metrics: requests by route and status, latency histogram, gauges read on scrape.

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

type Histogram = { counts: number[]; sum: number; count: number };

/** One method on one route: its label text (built once), requests by status, and its latency. */
type Series = { labels: string; byStatus: Map<number, number>; latency: Histogram };

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
  /** By route pattern, then method: a request finds its series with two Map reads and no string built. */
  private readonly series = new Map<string, Map<string, Series>>();
  private rateLimited = 0;

  constructor(private readonly gauges: Record<string, { help: string; read: () => number }> = {}) {}

  /** `route` is the matched route pattern (never the raw path), so label cardinality stays bounded. */
  observe(method: string, route: string, status: number, seconds: number): void {
    let byMethod = this.series.get(route);
    if (!byMethod) this.series.set(route, (byMethod = new Map()));
    let series = byMethod.get(method);
    if (!series) {
      series = {
        labels: `method="${label(method)}",route="${label(route)}"`,
        byStatus: new Map(),
        latency: { counts: BUCKETS.map(() => 0), sum: 0, count: 0 },
      };
      byMethod.set(method, series);
    }
    series.byStatus.set(status, (series.byStatus.get(status) ?? 0) + 1);
    const h = series.latency;
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
    const all = [...this.series.values()].flatMap((byMethod) => [...byMethod.values()]);
    for (const { labels, byStatus } of all) {
      for (const [status, n] of byStatus) out.push(`fmsg_api_requests_total{${labels},status="${status}"} ${n}`);
    }
    out.push(
      "# HELP fmsg_api_request_duration_seconds Request latency.",
      "# TYPE fmsg_api_request_duration_seconds histogram",
    );
    for (const { labels: k, latency: h } of all) {
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
