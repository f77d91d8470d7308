/**
 * Turning one framed entry into a message: protobuf decoding, CRIU's `required` fields
 * (protobuf-es does not check them when parsing; CRIU's protobuf-c does), and 64-bit
 * counters into plain numbers.
 */
import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';
import { FeatureSet_FieldPresence } from '@bufbuild/protobuf/wkt';
import { imageFormatError, readImageEntries, type ImageEntry } from './framing.js';
import type { ImageFraming } from './magic.js';

/** Dotted paths of the required fields not set in `msg`, nested messages included. */
export function missingRequiredFields(msg: ReflectMessage, prefix = ''): string[] {
  const missing: string[] = [];
  for (const field of msg.fields) {
    const set = msg.isSet(field);
    if (!set && field.presence === FeatureSet_FieldPresence.LEGACY_REQUIRED) missing.push(prefix + field.name);
    if (set && field.fieldKind === 'message') {
      missing.push(...missingRequiredFields(msg.get(field), `${prefix}${field.name}.`));
    }
  }
  return missing;
}

/** Decodes an entry's payload as `schema`, insisting on its required fields. */
export function decodeEntry<Desc extends DescMessage>(
  schema: Desc, entry: ImageEntry, file: string,
): MessageShape<Desc> {
  let msg: MessageShape<Desc>;
  try {
    msg = fromBinary(schema, entry.payload);
  } catch (err) {
    throw imageFormatError(file, `entry is not a valid ${schema.name} (${err instanceof Error ? err.message : String(err)})`, entry.offset, err);
  }
  const missing = missingRequiredFields(reflect(schema, msg));
  if (missing.length > 0) {
    throw imageFormatError(file, `${schema.name} entry lacks required field(s) ${missing.join(', ')}`, entry.offset);
  }
  return msg;
}

/** A 64-bit counter as a number; an error if it cannot be one exactly (never happens in practice). */
export function u64ToNumber(value: bigint, what: string, file: string, offset?: number): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw imageFormatError(file, `${what} = ${value} is too large`, offset);
  }
  return Number(value);
}

/**
 * The one entry of an image that holds a single entry (core, mm, ids), decoded as `schema`;
 * undefined when the file is missing or empty, an error when it holds more than one.
 */
export async function readSingleEntry<Desc extends DescMessage>(
  schema: Desc, file: string, framing: ImageFraming,
): Promise<MessageShape<Desc> | undefined> {
  const entries = await readImageEntries(file, framing);
  const [entry, extra] = entries;
  if (entry === undefined) return undefined;
  if (extra !== undefined) throw imageFormatError(file, `${entries.length} ${schema.name} entries, expected 1`, extra.offset);
  return decodeEntry(schema, entry, file);
}

/** Every entry of an image decoded as `schema`; none when the file is missing or empty. */
export async function readAllEntries<Desc extends DescMessage>(
  schema: Desc, file: string, framing: ImageFraming,
): Promise<MessageShape<Desc>[]> {
  return (await readImageEntries(file, framing)).map((entry) => decodeEntry(schema, entry, file));
}
