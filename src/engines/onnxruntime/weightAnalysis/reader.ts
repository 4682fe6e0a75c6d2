/*
 * Where each expert's matrices lie in the safetensors files, and the streamed reads of aligned chunks of
 * them (any layout, sharding and float dtype).
 */
import * as fsp from 'node:fs/promises';
import type { Checkpoint } from '../checkpoint';
import { DTYPE_BYTES, type SafetensorsDType } from '../formats/dtypes';
import { EngineFailure } from '../../../shared/protocol';

export type ExpertMatrixKind = 'gate' | 'up' | 'down';
export const KINDS: readonly ExpertMatrixKind[] = ['gate', 'up', 'down'];

export interface Segment {
  file: string;
  /** Byte offset of the matrix's first value. */
  offset: number;
  dtype: SafetensorsDType;
}

export interface MatrixStreams {
  rows: number;
  cols: number;
  /** Where each expert's copy of this matrix starts. */
  experts: Segment[];
}

export function expertStreams(ckpt: Checkpoint, layer: number): Record<ExpertMatrixKind, MatrixStreams> {
  const { hiddenSize: H, expertIntermediate: I, numExperts: E } = ckpt.arch;
  const shapes: Record<ExpertMatrixKind, [number, number]> = { gate: [I, H], up: [I, H], down: [H, I] };
  const out = {} as Record<ExpertMatrixKind, MatrixStreams>;
  for (const k of KINDS) out[k] = { rows: shapes[k][0], cols: shapes[k][1], experts: [] };
  const ln = ckpt.names.layer(layer);
  const floatDType = (name: string, dtype: SafetensorsDType) => {
    if (dtype !== 'F32' && dtype !== 'BF16' && dtype !== 'F16')
      throw new EngineFailure('bad-model', `${ckpt.dir}: tensor "${name}" has dtype ${dtype}; expected F32, BF16 or F16`);
    return dtype;
  };
  if (ckpt.expertLayout === 'per-expert') {
    for (let e = 0; e < E; e++) {
      const names = ln.expert(e);
      for (const k of KINDS) {
        const t = ckpt.tensor(names[k]);
        const numel = t.shape.reduce((a, b) => a * b, 1);
        if (numel !== I * H)
          throw new EngineFailure('bad-model', `${t.file}: tensor "${names[k]}" has shape [${t.shape.join(', ')}], expected ${shapes[k].join(' x ')}`);
        out[k].experts.push({ file: t.file, offset: t.fileOffset, dtype: floatDType(names[k], t.dtype) });
      }
    }
    return out;
  }
  if (ckpt.expertLayout === 'stacked-rows')
    throw new EngineFailure('bad-model', `${ckpt.dir}: the weight analysis of DBRX's stacked expert layout (w1, v1, w2) is not implemented`);
  const packed = ln.packed;
  if (!packed) throw new EngineFailure('bad-model', `${ckpt.dir}: packed expert layout without packed tensor names for layer ${layer}`);
  const gu = ckpt.tensor(packed.gateUp);
  const dn = ckpt.tensor(packed.down);
  const guBytes = DTYPE_BYTES[floatDType(packed.gateUp, gu.dtype)];
  const dnBytes = DTYPE_BYTES[floatDType(packed.down, dn.dtype)];
  if (gu.byteLength !== E * 2 * I * H * guBytes || dn.byteLength !== E * H * I * dnBytes) {
    throw new EngineFailure('bad-model', `${ckpt.dir}: packed experts of layer ${layer} do not hold ${E} x (2 x ${I} x ${H}) and ${E} x ${H} x ${I} values`);
  }
  for (let e = 0; e < E; e++) {
    // gate_up_proj[e] is [2I, H] with the gate rows first, then the up rows.
    const base = gu.fileOffset + e * 2 * I * H * guBytes;
    out.gate.experts.push({ file: gu.file, offset: base, dtype: gu.dtype });
    out.up.experts.push({ file: gu.file, offset: base + I * H * guBytes, dtype: gu.dtype });
    out.down.experts.push({ file: dn.file, offset: dn.fileOffset + e * H * I * dnBytes, dtype: dn.dtype });
  }
  return out;
}

export class ChunkReader {
  private handles = new Map<string, Promise<fsp.FileHandle>>();

  private handle(file: string): Promise<fsp.FileHandle> {
    let h = this.handles.get(file);
    if (!h) {
      h = fsp.open(file, 'r');
      this.handles.set(file, h);
    }
    return h;
  }

  /** Reads values [start, start + len) of every expert's matrix into `slot`, expert e at byte e * cap * 4. */
  async readChunk(experts: Segment[], start: number, len: number, cap: number, slot: ArrayBufferLike): Promise<void> {
    await Promise.all(
      experts.map(async (seg, e) => {
        const eb = DTYPE_BYTES[seg.dtype];
        const fh = await this.handle(seg.file);
        const buf = Buffer.from(slot, e * cap * 4, len * eb);
        const position = seg.offset + start * eb;
        let done = 0;
        while (done < buf.length) {
          const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done);
          if (bytesRead === 0) throw new EngineFailure('bad-model', `${seg.file}: unexpected end of file at offset ${position + done}: the file is truncated`);
          done += bytesRead;
        }
      }),
    );
  }

  async close(): Promise<void> {
    const hs = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(hs.map(async (h) => (await h.catch(() => null))?.close()));
  }
}

export const DTYPE_CODE = { F32: 0, BF16: 1, F16: 2 } as const;
