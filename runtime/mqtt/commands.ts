// Commands in, replies out: one table from command name to handler (Frigate's Dispatcher,
// docs/style.md "Device supervision").
// dispatchCommand is a pure function of (name, bytes, handlers) -> reply, so it is tested without a
// broker; reporter.ts only moves bytes between MQTT and here.
//
// A request that is not JSON, names an unknown command, has invalid args, or arrives retained gets
// an error reply and no handler runs, so nothing changes. A handler must itself apply all or nothing.

import type { IPublishPacket } from 'mqtt';
import { CommandError, CommandErrorCodes } from './errors.ts';
import { isPublishableTopic } from './topics.ts';
import { formatIssues } from '../schema/codec.ts';
import {
  commandSchemas,
  isCommandName,
  PAYLOAD_VERSION,
  type CommandArgs,
  type CommandName,
  type CommandReplyData,
  type OkReply,
  type ReplyPayload,
  type StateInput,
} from '../schema/payloads.ts';

/** What a handler may see and change. */
export interface CommandContext {
  readonly device: string;
  /** The current retained state. */
  readonly state: Readonly<StateInput>;
  /** Merges into the retained state and republishes it. */
  setState(patch: Partial<StateInput>): void;
}

export type CommandHandler<N extends CommandName> = (
  args: CommandArgs<N>,
  ctx: CommandContext,
) => CommandReplyData<N> | Promise<CommandReplyData<N>>;

/** The dispatch table. A command without a handler replies NOT_SUPPORTED. */
export type CommandHandlers = { [N in CommandName]?: CommandHandler<N> };

export interface DispatchInput {
  name: string;
  payload: Uint8Array;
  retained: boolean;
  handlers: CommandHandlers;
  ctx: CommandContext;
  now?: () => number;
}

const MAX_ID = 128;

/** Always resolves to a reply that passes ReplyPayload; never throws. */
export async function dispatchCommand(input: DispatchInput): Promise<ReplyPayload> {
  const { name, ctx } = input;
  const now = input.now ?? Date.now;
  let id: string | null = null;
  const fail = (code: string, message: string): ReplyPayload => ({
    v: PAYLOAD_VERSION,
    device: ctx.device,
    command: name.slice(0, 64),
    id,
    ts: now(),
    ok: false,
    error: { code: code.slice(0, 64) || CommandErrorCodes.HANDLER_FAILED, message: message.slice(0, 2000) || code },
  });

  // An empty payload is `{}`, so `mosquitto_pub -n -t …/cmd/ping` works.
  const text = Buffer.from(input.payload).toString('utf8');
  let json: unknown;
  try {
    json = text.trim() === '' ? {} : JSON.parse(text);
  } catch (e) {
    return fail(CommandErrorCodes.BAD_JSON, `command ${name}: payload is not JSON (${(e as Error).message})`);
  }
  // Echo the request id whenever it can be read, even when the rest is invalid.
  if (typeof json === 'object' && json !== null && !Array.isArray(json)) {
    const raw = (json as Record<string, unknown>).id;
    if (typeof raw === 'string' && raw.length > 0 && raw.length <= MAX_ID) id = raw;
  }
  if (input.retained) {
    return fail(
      'RETAINED_IGNORED',
      `command ${name} arrived as a retained message and was ignored; publish commands with retain=false`,
    );
  }
  if (!isCommandName(name)) {
    return fail(
      CommandErrorCodes.UNKNOWN_COMMAND,
      `unknown command ${JSON.stringify(name)}; known: ${Object.keys(commandSchemas).join(', ')}`,
    );
  }
  return run(name, json, input, fail, now, id);
}

async function run<N extends CommandName>(
  name: N,
  json: unknown,
  input: DispatchInput,
  fail: (code: string, message: string) => ReplyPayload,
  now: () => number,
  id: string | null,
): Promise<ReplyPayload> {
  const parsed = commandSchemas[name].args.safeParse(json);
  if (!parsed.success) {
    return fail(CommandErrorCodes.INVALID_ARGS, `command ${name}: ${formatIssues(parsed.error.issues)}`);
  }
  const handler = input.handlers[name] as CommandHandler<N> | undefined;
  if (!handler) return fail(CommandErrorCodes.NOT_SUPPORTED, `command ${name} is not supported by this device`);
  let data: unknown;
  try {
    data = await handler(parsed.data as CommandArgs<N>, input.ctx);
  } catch (e) {
    if (e instanceof CommandError) return fail(e.code, e.message);
    const code = typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : null;
    return fail(code ?? CommandErrorCodes.HANDLER_FAILED, `command ${name} failed: ${(e as Error)?.message ?? String(e)}`);
  }
  const checked = commandSchemas[name].reply.safeParse(data);
  if (!checked.success) {
    // A handler bug: say so to the requester rather than publishing something subscribers reject.
    const issues = checked.error.issues.map((i) => ({ ...i, path: ['data', ...i.path] }));
    return fail(CommandErrorCodes.HANDLER_FAILED, `command ${name}: handler returned an invalid reply: ${formatIssues(issues)}`);
  }
  const reply = { v: PAYLOAD_VERSION, device: input.ctx.device, command: name, id, ts: now(), ok: true, data: checked.data };
  return reply as OkReply<N> as ReplyPayload;
}

/**
 * Where a reply goes: the MQTT v5 responseTopic when the requester gave a usable one (with its
 * correlationData echoed), else the command topic + `/reply`.
 */
export function replyRoute(
  commandTopic: string,
  packet: Pick<IPublishPacket, 'properties'>,
): { topic: string; properties?: { correlationData: Buffer } } {
  const props = packet.properties;
  const topic =
    props?.responseTopic !== undefined && isPublishableTopic(props.responseTopic) ? props.responseTopic : `${commandTopic}/reply`;
  return props?.correlationData !== undefined ? { topic, properties: { correlationData: props.correlationData } } : { topic };
}
