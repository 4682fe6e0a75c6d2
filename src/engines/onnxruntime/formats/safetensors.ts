/**
 * safetensors: 8-byte little-endian header length N, N bytes of JSON header
 * { name: { dtype, shape, data_offsets: [begin, end] }, __metadata__?: {...} }, then the data.
 * data_offsets are relative to the first byte after the header.
 *
 * Every number in the header is checked against the file size before anything is read, so a truncated
 * or lying file yields an error naming the file, the tensor and the offsets instead of a crash or a hang.
 */
import { InputError } from '../../../shared/inputError';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DTYPE_BYTES, type SafetensorsDType, isSafetensorsDType, toFloat32, fromFloat32 } from './dtypes';

export interface SafetensorsTensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute byte offset of the tensor's data in the file. */
  fileOffset: number;
  byteLength: number;
}

export class SafetensorsError extends InputError {}

/** Largest header accepted; the format's reference implementation uses the same 100 MB cap. */
const MAX_HEADER_BYTES = 100_000_000;

export class SafetensorsFile {
  private constructor(
    readonly file: string,
    readonly fileSize: number,
    readonly dataStart: number,
    readonly tensors: Map<string, SafetensorsTensorInfo>,
    readonly metadata: Record<string, string>,
  ) {}

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      throw new SafetensorsError(file, `cannot open: ${(e as Error).message}`);
    }
    try {
      const fileSize = fs.fstatSync(fd).size;
      if (fileSize < 8) throw new SafetensorsError(file, `file is ${fileSize} bytes; a safetensors file starts with an 8-byte header length`);
      const lenBuf = Buffer.alloc(8);
      fs.readSync(fd, lenBuf, 0, 8, 0);
      const headerLen = Number(lenBuf.readBigUInt64LE(0));
      if (headerLen > MAX_HEADER_BYTES || 8 + headerLen > fileSize) {
        throw new SafetensorsError(
          file,
          `header length ${headerLen} at offset 0 exceeds the file (size ${fileSize} bytes): the file is truncated or not safetensors`,
        );
      }
      const headerBuf = Buffer.alloc(headerLen);
      fs.readSync(fd, headerBuf, 0, headerLen, 8);
      let header: unknown;
      try {
        header = JSON.parse(headerBuf.toString('utf8'));
      } catch (e) {
        throw new SafetensorsError(file, `header (bytes 8..${8 + headerLen}) is not valid JSON: ${(e as Error).message}`);
      }
      if (typeof header !== 'object' || header === null || Array.isArray(header)) {
        throw new SafetensorsError(file, 'header is not a JSON object');
      }
      const dataStart = 8 + headerLen;
      const dataSize = fileSize - dataStart;
      const tensors = new Map<string, SafetensorsTensorInfo>();
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === '__metadata__') {
          metadata = (raw ?? {}) as Record<string, string>;
          continue;
        }
        tensors.set(name, parseEntry(file, name, raw, dataStart, dataSize));
      }
      checkNoOverlap(file, tensors);
      return new SafetensorsFile(file, fileSize, dataStart, tensors, metadata);
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Raw bytes of one tensor. */
  readBytes(name: string): Uint8Array {
    const info = this.info(name);
    const buf = Buffer.alloc(info.byteLength);
    const fd = fs.openSync(this.file, 'r');
    try {
      let done = 0;
      while (done < info.byteLength) {
        const n = fs.readSync(fd, buf, done, info.byteLength - done, info.fileOffset + done);
        if (n === 0) {
          throw new SafetensorsError(
            this.file,
            `tensor "${name}": unexpected end of file at offset ${info.fileOffset + done} (expected bytes ${info.fileOffset}..${info.fileOffset + info.byteLength})`,
          );
        }
        done += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  readFloat32(name: string): Float32Array {
    const info = this.info(name);
    return toFloat32(this.readBytes(name), info.dtype);
  }

  info(name: string): SafetensorsTensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsError(this.file, `no tensor named "${name}"`);
    return info;
  }
}

function parseEntry(file: string, name: string, raw: unknown, dataStart: number, dataSize: number): SafetensorsTensorInfo {
  const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
  if (!entry || typeof entry !== 'object') throw new SafetensorsError(file, `tensor "${name}": header entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string' || !isSafetensorsDType(dtype)) {
    throw new SafetensorsError(file, `tensor "${name}": unsupported dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(file, `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new SafetensorsError(file, `tensor "${name}": data_offsets ${JSON.stringify(offsets)} must be two non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  const expected = (shape as number[]).reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
  if (end < begin || end - begin !== expected) {
    throw new SafetensorsError(
      file,
      `tensor "${name}": data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`,
    );
  }
  if (end > dataSize) {
    throw new SafetensorsError(
      file,
      `tensor "${name}": data_offsets [${begin}, ${end}] (file bytes ${dataStart + begin}..${dataStart + end}) run past the end of the file (${dataStart + dataSize} bytes): the file is truncated`,
    );
  }
  return { name, dtype, shape: shape as number[], fileOffset: dataStart + begin, byteLength: end - begin };
}

function checkNoOverlap(file: string, tensors: Map<string, SafetensorsTensorInfo>): void {
  const sorted = [...tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.fileOffset - b.fileOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    if (sorted[i].fileOffset < prev.fileOffset + prev.byteLength) {
      throw new SafetensorsError(file, `tensors "${prev.name}" and "${sorted[i].name}" overlap at offset ${sorted[i].fileOffset}`);
    }
  }
}

export interface TensorToWrite {
  name: string;
  dtype: 'F32' | 'F16' | 'BF16';
  shape: number[];
  data: Float32Array;
}

/** Writes a safetensors file; tensors are stored in the given order, 8-byte aligned like the reference writer. */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  const blobs: Uint8Array[] = [];
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) throw new Error(`writeSafetensors: "${t.name}" has ${t.data.length} values for shape ${JSON.stringify(t.shape)}`);
    const bytes = fromFloat32(t.data, t.dtype);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes.byteLength] };
    blobs.push(bytes);
    offset += bytes.byteLength;
  }
  let headerText = JSON.stringify(header);
  headerText += ' '.repeat((8 - ((headerText.length + 8) % 8)) % 8);
  const headerBytes = Buffer.from(headerText, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(headerBytes.length));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, headerBytes);
    for (const b of blobs) fs.writeSync(fd, b);
  } finally {
    fs.closeSync(fd);
  }
}
