/** The BENCHMARKS.md section of bench/precision.ts (bench/results/precision.json). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

export function precisionSection(r: Json): string[] {
  const gib = (b: number) => (b ? `${(b / 2 ** 30).toFixed(2)} GiB` : '—');
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const out = [
    '## Weight precision (issue 23, bench/precision.ts)',
    '',
    `Measured ${r.measuredAt} on ${r.machine.cpus} cores (${r.machine.cpuModel}), ${r.machine.memGiB} GiB, Node ${r.machine.node}. Checkpoint: ${r.checkpoint.note} (${gib(r.checkpoint.bytes)} of safetensors).`,
    '',
    '| engine, precision | cache | first build (load, empty cache) | peak RSS (process tree) | 177-token trace | 600-token trace | top-k sets = fp32 (600 tokens) | experts shared | max router-prob. diff |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const x of r.results) {
    const a = x.agreementWithFp32['600'];
    out.push(
      `| ${x.name} | ${gib(x.cacheBytes)} | ${s(x.loadMs)} | ${(x.peakRssMiB / 1024).toFixed(2)} GiB | ${s(x.traceMs['177'])} | ${s(x.traceMs['600'])} | ${pct(a.setAgreement)} | ${pct(a.expertOverlap)} | ${a.maxProbDiff.toExponential(2)} |`,
    );
  }
  out.push('');
  return out;
}
