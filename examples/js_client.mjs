// A member system over its node's NATS, in JavaScript (the official client, npm `nats`): the
// whole loop between two organisations, each system with its own credentials, and each one's
// event feed.
//
//     node examples/js_client.mjs [credentials.json] [sender] [recipient]
//
// The credentials are those `relais demo` writes (.relais/demo/credentials.json): for each
// node, clients[0] holds the system's API token and NATS login (an nkey seed file, its inbox
// prefix, its feed's stream and consumer). A real system gets the same from its node's admin
// (`relais client create`). Only the node's /asyncapi.json and the README were needed.

import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, nkeyAuthenticator } from "nats";

const FEED_WAIT_MS = 60_000; // the other node's answer crosses the network through the hub

class System {
  constructor(name, creds) {
    this.name = name;
    this.creds = creds;
    this.seen = new Set(); // event ids: the feed delivers at least once
    this.changes = new Map(); // what each referral's events said so far
  }

  async connect() {
    const login = this.creds.nats;
    const seed = readFileSync(login.nkey_seed_file, "utf8").trim();
    this.nc = await connect({
      servers: login.url,
      authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)), // the node knows only the public key
      inboxPrefix: login.inbox_prefix, // the only inbox it may read
      name: `example ${this.name}`,
    });
    this.feed = await this.nc.jetstream().consumers.get(login.feed.stream, login.feed.consumer);
  }

  // A command; its result, or its typed error thrown.
  async ask(action, body) {
    const reply = await this.nc.request(
      `relais.cmd.referrals.${action}`,
      JSON.stringify({ ...body, token: this.creds.token }),
      { timeout: 10_000 },
    );
    const answer = reply.json();
    if (answer.error) throw new Error(`${action}: ${JSON.stringify(answer.error)}`);
    return answer.result;
  }

  // Read the feed (acknowledging each event) until this referral showed every one of
  // `changes`: the other node's steps may arrive in another order than they were made.
  async waitFor(referralId, ...changes) {
    const deadline = Date.now() + FEED_WAIT_MS;
    while (Date.now() < deadline) {
      const shown = this.changes.get(referralId) ?? new Set();
      if (changes.every((c) => shown.has(c))) return;
      const messages = await this.feed.fetch({ max_messages: 20, expires: 2000 });
      for await (const msg of messages) {
        const event = msg.json();
        msg.ack();
        if (this.seen.has(event.id)) continue; // a redelivery
        this.seen.add(event.id);
        const { referral, change: what, kind } = event.data;
        console.log(
          `  [${this.name} feed] ${event.type} ${referral.referral_id}: ${what ?? kind} (status ${referral.status})`,
        );
        if (what) {
          if (!this.changes.has(referral.referral_id)) this.changes.set(referral.referral_id, new Set());
          this.changes.get(referral.referral_id).add(what);
        }
      }
    }
    throw new Error(`${this.name}: ${referralId} did not show all of ${changes.join(", ")}`);
  }

  async close() {
    await this.nc.close();
  }
}

async function main(path, senderId, recipientId) {
  const nodes = JSON.parse(readFileSync(path, "utf8")).nodes;
  const sender = new System(senderId, nodes[senderId].clients[0]);
  const recipient = new System(recipientId, nodes[recipientId].clients[0]);
  await sender.connect();
  await recipient.connect();
  try {
    const started = Date.now();
    const made = await sender.ask("create", {
      to_org: recipientId,
      category: "primary_health",
      urgency: "priority",
      legal_basis: "consent",
      consent: {},
      payload: { given_name: "Awa", need_summary: "Fièvre depuis trois jours" },
      idempotency_key: randomUUID(), // a retried create returns the same referral
    });
    const id = made.referral_id;
    console.log(`${senderId}: sent ${id} (${made.status})`);
    await sender.waitFor(id, "sent");
    await recipient.waitFor(id, "received");
    for (const [action, extra] of [
      ["accept", {}],
      ["start", {}],
      ["complete", { reason: "service_provided" }],
    ]) {
      const done = await recipient.ask("act", { referral_id: id, action, ...extra });
      console.log(`${recipientId}: ${action} -> ${done.status}`);
    }
    await sender.waitFor(id, "received", "accepted", "in_progress", "completed");
    const outcome = await sender.ask("get", { referral_id: id });
    console.log(`${senderId}: ${id} is ${outcome.status}`);
    let pages = 0;
    let total = 0;
    let after = null;
    do {
      const page = await sender.ask("list", { box: "outbox", limit: 2, ...(after ? { after } : {}) });
      pages += 1;
      total += page.items.length;
      after = page.next;
    } while (after);
    console.log(`${senderId}: outbox of ${total} referrals in ${pages} pages of 2`);
    console.log(`the loop took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await sender.close();
    await recipient.close();
  }
}

const [path = ".relais/demo/credentials.json", sender = "sanad", recipient = "amal"] =
  process.argv.slice(2);
await main(path, sender, recipient);
