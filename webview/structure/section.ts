/** What the structure view's sections share: the analysis, the view's current choices and its callbacks. */
import type { StructureViewToHost } from '../../src/shared/protocol';
import type { SimilarityScale } from '../charts/similarityMatrix';
import type { MatrixKey, StructureLayer, StructureModel } from './model';

export interface ExpertPair {
  a: number;
  b: number;
}

/** The view's choices; sections read them when they draw, and write the ones their own controls change. */
export interface StructureSelection {
  layerId: number | null;
  matrixKey: MatrixKey;
  scale: SimilarityScale;
  /** The pair under the pointer or keyboard cursor; kept across re-renders (width changes, layer changes). */
  hoverPair: ExpertPair | null;
}

export interface SectionContext {
  doc: Document;
  model: StructureModel;
  selection: StructureSelection;
  /** Chart widths, measured once per content render (one layout instead of one per chart). */
  widths: { matrix: number; depth: number; scatter: number; r2: number };
  currentLayer(): StructureLayer | null;
  selectLayer(layer: number): void;
  /** Persists the view state a moment later. */
  save(): void;
  post(message: StructureViewToHost): void;
  /** The file-name stem of the selected layer's exports. */
  base(): string;
}

export interface StructureSection {
  /** Reads the width of the section's chart hosts: called for every section before any chart draws. */
  measure(): void;
  destroy(): void;
}
