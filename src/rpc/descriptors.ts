import { readFileSync } from 'node:fs';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/**
 * The exact FileDescriptorSet `buf build` wrote next to the generated code (`npm run generate`).
 * Reflection serves these real descriptors, with their imports and comments, so grpcurl-style
 * clients can describe and call every method; the HTTP gateway reads its routes from them.
 */
export function loadDescriptorSetBytes(): Uint8Array {
  return readFileSync(new URL('../gen/descriptors.binpb', import.meta.url));
}

/**
 * Splits a FileDescriptorSet into its files' bytes exactly as buf encoded them. Decoding and
 * re-encoding through generated code would drop unknown fields and proto2 presence.
 */
export function fileDescriptorProtos(setBytes: Uint8Array): Buffer[] {
  const reader = new BinaryReader(setBytes);
  const files: Buffer[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) files.push(Buffer.from(reader.bytes()));
    else reader.skip(wireType);
  }
  return files;
}
