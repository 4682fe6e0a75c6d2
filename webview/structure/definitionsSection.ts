/** "Definitions": every term the structure view uses, on the page. */
import { append, h, section } from '../common/dom';
import { NEURON_ORDER } from './model';

export function definitionsSection(content: HTMLElement, doc: Document, E: number): void {
  const df = section(content, 'Definitions', 'book', 'structure-definitions-section');
  const dl = h(doc, 'dl', { class: 'defs', 'data-testid': 'structure-definitions' });
  const defs: [string, string][] = [
    [
      'Cosine similarity',
      'cos(a, b) = a·b / (|a| |b|) for two vectors a and b; 1 = same direction, 0 = orthogonal, −1 = opposite. A vector of zeros gets 0. Cosine ignores scale: it compares directions, not sizes.',
    ],
    [
      'Expert weight similarity',
      'gate_proj (w1), up_proj (w3), down_proj (w2): the cosine similarity of two experts\' flattened weight matrices (all of the matrix\'s values as one vector). "All": of the three matrices concatenated.',
    ],
    [
      'Neuron-level similarity',
      "For an expert's gate_proj matrix W (one row per intermediate neuron, one column per hidden dimension): the row-mean vector (mean of each row: one value per neuron) and the column-mean vector (mean of each column: one value per hidden dimension). Neuron row / column means: the cosine similarity of two experts' row-mean / column-mean vectors. " +
        NEURON_ORDER,
    ],
    [
      'Router rows',
      'The router (gate) of a layer is a matrix with one row per expert; the router-row similarity of two experts is the cosine similarity of their rows.',
    ],
    [
      'Diagonal',
      'An expert compared with itself: 1 by definition (0 only for an all-zero matrix). Drawn dimmed and left out of the colour scale and of every mean.',
    ],
    [
      'Mean off-diagonal similarity',
      `The mean of a similarity matrix over the E(E−1) = ${E * (E - 1)} ordered pairs of different experts, per layer; "Similarity by depth" plots it over the layers.`,
    ],
    [
      'Router-vs-expert R²',
      `Ordinary least squares with intercept of y = router-row similarity on x = expert-weight similarity ("all") over the E(E−1)/2 = ${(E * (E - 1)) / 2} pairs a < b of a layer; R² = 1 − SS_res / SS_tot (the squared Pearson correlation). 0 when x or y has no variance.`,
    ],
    [
      'Colour scale',
      'Red: positive similarity, blue: negative, opacity proportional to |value|. "Data range" scales to the largest |off-diagonal| value of the matrix shown (real experts are often nearly orthogonal, so a −1 … 1 scale would look empty); "−1 … 1" uses the full range of cosine.',
    ],
  ];
  for (const [t, d] of defs) append(dl, h(doc, 'dt', {}, t), h(doc, 'dd', {}, d));
  df.body.append(dl);
}
