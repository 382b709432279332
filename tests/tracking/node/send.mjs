// Sends every Segment call type, then a flush of many tracks, with Segment's Node library.
// Usage: TIDINGS_URL=http://127.0.0.1:PORT WRITE_KEY=... RUN=... COUNT=500 node send.mjs
// Prints one JSON line: {"errors": [...]}; exits 1 if the library reported an error.
import { Analytics } from '@segment/analytics-node'

const { TIDINGS_URL, WRITE_KEY, RUN } = process.env
const count = Number(process.env.COUNT ?? '500')
const errors = []
const analytics = new Analytics({
  writeKey: WRITE_KEY,
  host: TIDINGS_URL,
  flushAt: 100,
  flushInterval: 200,
  maxRetries: 3,
})
analytics.on('error', (err) => errors.push(String(err?.reason ?? err?.message ?? err)))

const user = `node-user-${RUN}`
const anon = `node-anon-${RUN}`
const id = (name) => `node-${RUN}-${name}`
analytics.identify({ userId: user, messageId: id('identify'), traits: { email: 'node@example.org', plan: 'pro' } })
analytics.track({ userId: user, messageId: id('track'), event: 'Order Shipped', properties: { order: 7 } })
analytics.group({ userId: user, messageId: id('group'), groupId: `node-team-${RUN}`, traits: { name: 'Node team' } })
analytics.page({ userId: user, messageId: id('page'), name: 'Home', properties: { path: '/' } })
analytics.screen({ userId: user, messageId: id('screen'), name: 'Settings' })
analytics.alias({ userId: user, previousId: anon, messageId: id('alias') })
for (let n = 0; n < count; n++) {
  analytics.track({ userId: `${user}-${n % 10}`, messageId: id(`bulk-${n}`), event: 'Bulk', properties: { n } })
}
await analytics.closeAndFlush({ timeout: 60000 })
console.log(JSON.stringify({ errors }))
process.exit(errors.length ? 1 : 0)
