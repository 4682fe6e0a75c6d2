import type { ModelInfo } from '../shared/protocol';

/** The decoder-layer index of each routing row: what every view and export labels a row with. */
export function decoderLayerOfRows(info: Pick<ModelInfo, 'numLayers' | 'moeLayers'>): number[] {
  const rows = info.moeLayers;
  if (rows && rows.length === info.numLayers) return rows.slice();
  return Array.from({ length: info.numLayers }, (_, i) => i);
}

/** "layer 3" for routing row `row`: the decoder layer, never the row index. */
export function rowLabel(info: Pick<ModelInfo, 'numLayers' | 'moeLayers'>, row: number): string {
  return `layer ${decoderLayerOfRows(info)[row] ?? row}`;
}
