import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import { BinaryWriter } from '@bufbuild/protobuf/wire';

/** What a unary call ended with, whatever it was. */
export interface RawAnswer {
  code: status;
  details: string;
  /** The response bytes, on success. */
  body?: Buffer;
}

/** A grpc-js client that sends any bytes as a request body: how a hostile or broken client calls. */
export function rawGrpcClient(address: string) {
  const client = new Client(address, credentials.createInsecure());
  return {
    call(path: string, body: Uint8Array, token?: string): Promise<RawAnswer> {
      const metadata = new Metadata();
      if (token) metadata.set('authorization', `Bearer ${token}`);
      return new Promise((resolve) => {
        client.makeUnaryRequest(
          path,
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from(body),
          metadata,
          { deadline: Date.now() + 10_000 },
          (error, response) => resolve(error ? { code: error.code, details: error.details } : { code: status.OK, details: '', body: response }),
        );
      });
    },
    close: () => client.close(),
  };
}

/** Protobuf bytes written field by field, for requests no generated encoder would produce. */
export function protobuf(build: (w: BinaryWriter) => void): Uint8Array {
  const writer = new BinaryWriter();
  build(writer);
  return writer.finish();
}

/** A google.protobuf.Timestamp field with any seconds and nanos, valid or not. */
export function timestampField(w: BinaryWriter, field: number, seconds: bigint, nanos: number): void {
  w.tag(field, 2).fork().tag(1, 0).int64(seconds).tag(2, 0).int32(nanos).join();
}

/** A google.protobuf.Struct field `{"a": {"a": ... 1}}` nesting `levels` objects deep. */
export function nestedStructField(w: BinaryWriter, field: number, levels: number): void {
  // Built inside out: Value{number 1}, then levels x (Struct{fields{"a": Value{struct}}}).
  let value = protobuf((v) => v.tag(2, 1).double(1));
  for (let i = 0; i < levels; i++) {
    const struct = protobuf((s) => s.tag(1, 2).fork().tag(1, 2).string('a').tag(2, 2).bytes(value).join());
    value = i === levels - 1 ? struct : protobuf((v) => v.tag(5, 2).bytes(struct));
  }
  w.tag(field, 2).bytes(value);
}
