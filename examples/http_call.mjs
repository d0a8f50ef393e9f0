// Place a call over dialq's HTTP API with Node's fetch (Node 18+, no packages), follow it live
// until it connects, cancel it, then fetch its transcript.
//
//   DIALQ_API_URL=http://127.0.0.1:8000 DIALQ_API_KEY=dq_... node examples/http_call.mjs +14155550123
//
// The key comes from `dialq apikey create --account default` (it is shown once).

const api = process.env.DIALQ_API_URL ?? "http://127.0.0.1:8000";
const key = process.env.DIALQ_API_KEY;
const number = process.argv[2];
if (!key || !number) {
  console.error("usage: DIALQ_API_KEY=dq_... node http_call.mjs PHONE_NUMBER");
  process.exit(2);
}
const auth = { Authorization: `Bearer ${key}` };

async function call(method, path, body, headers = {}) {
  const answer = await fetch(api + path, {
    method,
    headers: { ...auth, ...headers, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!answer.ok) {
    // Every error is an RFC 9457 problem: `detail`, and `errors` (field, rule) for a 422.
    const problem = await answer.json();
    throw new Error(`${method} ${path}: ${answer.status} ${problem.detail}`);
  }
  return answer.json();
}

// Every SSE event of the stream until `until(event)` is true; then the stream is dropped.
async function follow(path, until) {
  const stop = new AbortController();
  const answer = await fetch(api + path, {
    headers: { ...auth, Accept: "text/event-stream" },
    signal: stop.signal,
  });
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of answer.body) {
      buffer += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
        const event = {};
        for (const line of block.split(/\r?\n/)) {
          const match = /^(\w+):\s?(.*)$/.exec(line);
          if (match) event[match[1]] = match[2];
        }
        if (event.event) {
          console.log(`event ${event.event}`);
          if (until(event)) return event;
        }
      }
    }
  } finally {
    stop.abort();
  }
  throw new Error("the stream ended first");
}

// 1. Place it; the Idempotency-Key makes a retry after a timeout or a 503 safe.
const placed = await call(
  "POST", "/v1/calls",
  { phone_number: number, session_name: "Node example" },
  { "Idempotency-Key": `node-${Date.now()}-${process.pid}` },
);
console.log(`placed ${placed.id}`);

// 2. Follow it until it is connected (or over without connecting).
const over = new Set(["failed", "canceled", "unknown", "completed"]);
const seen = await follow(`/v1/calls/${placed.id}/events`,
  (e) => e.event === "connected" || over.has(e.event));
if (seen.event !== "connected") {
  console.error("never connected");
  process.exit(1);
}

// 3. Cancel it: a live call is stopped at Symbl.
const canceled = await call("POST", `/v1/calls/${placed.id}/cancel`);
console.log(`cancel: ${canceled.status} (${canceled.message})`);

// 4. Its transcript comes once its insights are harvested: 409 until then.
for (let tries = 0; tries < 60; tries++) {
  const answer = await fetch(`${api}/v1/calls/${placed.id}/transcript?format=text`, { headers: auth });
  if (answer.status === 200) {
    console.log("transcript:");
    console.log(await answer.text());
    process.exit(0);
  }
  if (answer.status !== 409) {
    console.error(`no transcript (${answer.status}): ${(await answer.json()).detail}`);
    process.exit(1);
  }
  await new Promise((resolve) => setTimeout(resolve, 1000));
}
console.error(`no transcript yet; try later: GET /v1/calls/${placed.id}/transcript`);
process.exit(1);
