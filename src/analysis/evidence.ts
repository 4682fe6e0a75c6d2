/** Text and CSV forms of a comparison's flipped questions and calibration comparison (CLI and exports). */
import { ANSWER_LETTERS, type CalibrationComparison, type FlippedQuestion } from '../shared/protocol';

const letter = (i: number) => ANSWER_LETTERS[i] ?? '?';

function csvCell(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function flippedCsv(flipped: readonly FlippedQuestion[]): string {
  const rows = [['id', 'subject', 'direction', 'gold', 'predicted_a', 'predicted_b']];
  for (const f of flipped) rows.push([f.id, f.subject, f.direction, letter(f.gold), letter(f.predictedA), letter(f.predictedB)]);
  return rows.map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

export function describeFlipped(flipped: readonly FlippedQuestion[], limit = 40): string[] {
  const broken = flipped.filter((f) => f.direction === 'right-to-wrong').length;
  const lines = [`flipped questions: ${broken} right -> wrong, ${flipped.length - broken} wrong -> right`];
  for (const f of flipped.slice(0, limit))
    lines.push(
      `  ${f.direction === 'right-to-wrong' ? 'right -> wrong' : 'wrong -> right'}  ${f.id}  (${f.subject}; gold ${letter(f.gold)}, A answered ${letter(f.predictedA)}, B ${letter(f.predictedB)})`,
    );
  if (flipped.length > limit) lines.push(`  ... and ${flipped.length - limit} more`);
  return lines;
}

export function describeCalibration(c: CalibrationComparison): string[] {
  const lines = [
    `calibration comparison (lowest ${+(c.ratio * 100).toFixed(2)}% per layer): mean Jensen-Shannon divergence of activations ${c.meanJsDivergence.toFixed(4)}; ` +
      `mean overlap of the pruned sets (Jaccard) ${c.criteria.map((k) => `${k} ${c.meanJaccard[k]!.toFixed(3)}`).join(', ')}`,
  ];
  for (const l of c.layers)
    lines.push(
      `  layer ${String(l.layer).padStart(2)}  JS ${l.jsDivergence.toFixed(4)}  ${c.criteria.map((k) => `${k} ${l.overlap[k]!.shared}/${l.overlap[k]!.prunedA} (J ${l.overlap[k]!.jaccard.toFixed(2)})`).join('  ')}`,
    );
  return lines;
}
