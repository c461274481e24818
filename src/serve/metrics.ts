/**
 * Prometheus metrics named as Text Embeddings Inference names them (router/src/prometheus.rs,
 * core/src/queue.rs), so TEI dashboards work: te_request_count{method}, te_request_success,
 * te_request_failure{err}, te_request_duration and its tokenization/queue/inference parts,
 * te_request_input_length, te_batch_next_size, te_batch_next_tokens and te_queue_size. Text
 * exposition format 0.0.4; a series appears after its first use, as in TEI.
 */

/** 1e-5 · 1.5^k for k = 1..35: TEI's buckets for every duration in seconds. */
const DURATION_BUCKETS = Array.from({ length: 35 }, (_, k) => 1e-5 * 1.5 ** (k + 1));
const powersOfTwo = (max: number) => Array.from({ length: max + 1 }, (_, k) => 2 ** k);

interface Histogram {
  buckets: number[];
  counts: number[];
  sum: number;
  count: number;
}

export class Metrics {
  private counters = new Map<string, Map<string, number>>();
  private histograms = new Map<string, Map<string, Histogram>>();
  private gauges = new Map<string, number>();
  private bucketsOf: Record<string, number[]>;

  constructor(maxInputLength: number) {
    this.bucketsOf = {
      te_request_input_length: powersOfTwo(19).filter((b) => b <= Math.max(1, maxInputLength)),
      te_batch_next_size: powersOfTwo(12),
      te_batch_next_tokens: powersOfTwo(20),
    };
  }

  count(name: string, labels: Record<string, string> = {}, by = 1): void {
    const series = this.counters.get(name) ?? new Map<string, number>();
    this.counters.set(name, series);
    const key = labelText(labels);
    series.set(key, (series.get(key) ?? 0) + by);
  }

  observe(name: string, value: number, labels: Record<string, string> = {}): void {
    const series = this.histograms.get(name) ?? new Map<string, Histogram>();
    this.histograms.set(name, series);
    const key = labelText(labels);
    let h = series.get(key);
    if (!h) {
      const buckets = this.bucketsOf[name] ?? DURATION_BUCKETS;
      h = { buckets, counts: buckets.map(() => 0), sum: 0, count: 0 };
      series.set(key, h);
    }
    h.buckets.forEach((le, i) => {
      if (value <= le) h!.counts[i]++;
    });
    h.sum += value;
    h.count++;
  }

  gauge(name: string, value: number): void {
    this.gauges.set(name, value);
  }

  /** The exposition text (Content-Type: text/plain; version=0.0.4). */
  render(): string {
    const out: string[] = [];
    for (const [name, series] of this.counters) {
      out.push(`# TYPE ${name} counter`);
      for (const [labels, v] of series) out.push(`${name}${labels} ${v}`);
    }
    for (const [name, v] of this.gauges) out.push(`# TYPE ${name} gauge`, `${name} ${v}`);
    for (const [name, series] of this.histograms) {
      out.push(`# TYPE ${name} histogram`);
      for (const [labels, h] of series) {
        const inner = labels.slice(1, -1);
        const le = (v: string) => `{${inner ? `${inner},` : ""}le="${v}"}`;
        h.buckets.forEach((b, i) => out.push(`${name}_bucket${le(String(b))} ${h.counts[i]}`));
        out.push(`${name}_bucket${le("+Inf")} ${h.count}`, `${name}_sum${labels} ${h.sum}`, `${name}_count${labels} ${h.count}`);
      }
    }
    return out.join("\n") + "\n";
  }
}

function labelText(labels: Record<string, string>): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`))}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}
