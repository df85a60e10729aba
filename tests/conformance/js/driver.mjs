// Drives one official @supabase/realtime-js client, controlled by JSON lines on stdin.
//
// Every command is {"id": N, "cmd": "...", ...args} and is answered by exactly one
// {"type": "reply", "id": N, "ok": true, "result": ...} (or "ok": false with "error") once it has
// completed: for send, track, untrack and unsubscribe the result is what the client's promise
// resolved to ('ok', 'error', 'timed out'). Everything the client reports meanwhile is an event
// line on stdout:
//   {type: "socket", state: "open" | "close" | "error", code?, reason?}
//   {type: "frame", dir: "in" | "out", binary, data}     every WebSocket frame (binary as hex)
//   {type: "status", channel, status, error?}            subscribe() callback
//   {type: "broadcast", channel, message}                .on('broadcast') callback
//   {type: "presence", channel, event, key?, newPresences?, leftPresences?, state}
//   {type: "system", channel, payload}                   .on('system') callback
//   {type: "postgres_changes", channel, payload}         .on('postgres_changes') callback, in
//                                                        the client's shape (eventType, new, old)
// Commands: connect {url, token, vsn?}, channel {name, config?}, on_broadcast {channel, event?},
// on_presence {channel}, on_postgres_changes {channel, event, schema, table, filter?},
// subscribe {channel}, send {channel, event, payload},
// track {channel, payload}, untrack {channel}, set_auth {token}, unsubscribe {channel},
// disconnect, exit.
import { createInterface } from 'node:readline'
import { RealtimeClient } from '@supabase/realtime-js'
import WebSocket from 'ws'

const emit = (event) => process.stdout.write(JSON.stringify(event) + '\n')
const show = (data) =>
  typeof data === 'string' ? data : Buffer.from(data).toString('hex')

// The `ws` WebSocket, tracing every frame in both directions (Node 20 has no global WebSocket).
class TracingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args)
    this.addEventListener('message', ({ data }) =>
      emit({ type: 'frame', dir: 'in', binary: typeof data !== 'string', data: show(data) })
    )
  }

  send(data, ...rest) {
    emit({ type: 'frame', dir: 'out', binary: typeof data !== 'string', data: show(data) })
    return super.send(data, ...rest)
  }
}

let client = null
const channels = new Map()

function channel(name) {
  const found = channels.get(name)
  if (!found) throw new Error(`no channel ${name}`)
  return found
}

const commands = {
  connect({ url, token, vsn }) {
    client = new RealtimeClient(url, {
      params: { apikey: token },
      transport: TracingWebSocket,
      ...(vsn ? { vsn } : {}),
    })
    client.socketAdapter.onOpen(() => emit({ type: 'socket', state: 'open' }))
    client.socketAdapter.onClose((e) =>
      emit({ type: 'socket', state: 'close', code: e?.code, reason: e?.reason })
    )
    client.socketAdapter.onError((e) =>
      emit({ type: 'socket', state: 'error', error: String(e?.message ?? e) })
    )
    client.connect()
  },
  channel({ name, config = {} }) {
    const ch = client.channel(name, { config })
    ch.on('system', {}, (payload) => emit({ type: 'system', channel: name, payload }))
    channels.set(name, ch)
  },
  on_broadcast({ channel: name, event = '*' }) {
    channel(name).on('broadcast', { event }, (message) =>
      emit({ type: 'broadcast', channel: name, message })
    )
  },
  on_presence({ channel: name }) {
    const ch = channel(name)
    const report = (event) => (payload) =>
      emit({ type: 'presence', channel: name, event, ...payload, state: ch.presenceState() })
    ch.on('presence', { event: 'sync' }, report('sync'))
    ch.on('presence', { event: 'join' }, report('join'))
    ch.on('presence', { event: 'leave' }, report('leave'))
  },
  on_postgres_changes({ channel: name, event, schema, table, filter }) {
    const binding = { event, schema, table, ...(filter === undefined ? {} : { filter }) }
    channel(name).on('postgres_changes', binding, (payload) =>
      emit({ type: 'postgres_changes', channel: name, payload })
    )
  },
  subscribe({ channel: name }) {
    channel(name).subscribe((status, err) =>
      emit({ type: 'status', channel: name, status, ...(err ? { error: err.message } : {}) })
    )
  },
  send: ({ channel: name, event, payload }) =>
    channel(name).send({ type: 'broadcast', event, payload }),
  track: ({ channel: name, payload }) => channel(name).track(payload),
  untrack: ({ channel: name }) => channel(name).untrack(),
  set_auth: ({ token }) => client.setAuth(token),
  unsubscribe: ({ channel: name }) => channel(name).unsubscribe(),
  disconnect: () => client.disconnect(),
  exit: () => process.exit(0),
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue
  const { id, cmd, ...args } = JSON.parse(line)
  // Commands run concurrently: a reply may overtake the reply of an earlier, slower command.
  Promise.resolve()
    .then(() => {
      if (!Object.hasOwn(commands, cmd)) throw new Error(`unknown command ${cmd}`)
      return commands[cmd](args)
    })
    .then(
      (result) => emit({ type: 'reply', id, ok: true, result: result ?? null }),
      (error) => emit({ type: 'reply', id, ok: false, error: String(error?.stack ?? error) })
    )
}
process.exit(0)
