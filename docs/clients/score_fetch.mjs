// Score a checkout from Node.js 18+ with its built-in fetch, no dependencies (docs/clients.md):
//
//     BOTSCORE_API_KEY=... node score_fetch.mjs http://127.0.0.1:8887 pay_123 0.1 0.2
//
// A timeout set against the service's p99, the retry table of docs/clients.md, and a decision of your own
// without a score, whatever answers (botscore, or a load balancer's HTML 502): it never throws.

// Per attempt: five times the p99 the service is sized for, never under 100 ms (docs/clients.md).
// BOTSCORE_TIMEOUT_MS overrides it (the test suite runs on a busy machine).
const env = (name, otherwise) => process.env[name] ?? otherwise;
const TIMEOUT_MS = Number(env("BOTSCORE_TIMEOUT_MS", "250"));
const ATTEMPTS = 2; // one retry: a new attempt may reach another task; then decide without a score

async function errorCode(response) {
  // botscore's JSON error, or "not JSON" for anything else (an HTML page).
  try {
    const error = JSON.parse(await response.text()).error;
    if (typeof error?.code === "string") return [error.code, String(error.message ?? "")];
  } catch {}
  return ["not JSON", ""];
}

// {pBot, version} or {pBot: null, reason}.
async function score(url, key, paymentId, x1, x2) {
  const headers = { "Content-Type": "application/json", "X-Request-ID": paymentId }; // the audit row's id
  if (key) headers.Authorization = `Bearer ${key}`;
  let reason = "";
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    let response;
    try {
      response = await fetch(`${url}/bot-score`, {
        method: "POST",
        headers,
        body: JSON.stringify({ x1, x2 }),
        signal: AbortSignal.timeout(TIMEOUT_MS), // the whole attempt: connect, send, answer
      });
    } catch (error) {
      reason = error.name === "TimeoutError" ? "timeout" : "connection error"; // refused, reset, closed
      continue;
    }
    const status = response.status;
    if (status === 200) {
      try {
        const pBot = JSON.parse(await response.text()).p_bot;
        if (typeof pBot === "number") return { pBot, version: response.headers.get("X-Model-Version") };
      } catch (error) {
        if (error.name === "TimeoutError") {
          reason = "timeout"; // the body did not come in time
          continue;
        }
      }
      return { pBot: null, reason: "200 not JSON" }; // not botscore's answer (a proxy's page): report it
    }
    let code, message;
    try {
      [code, message] = await errorCode(response);
    } catch {
      [code, message] = ["not JSON", ""];
    }
    if (status >= 500) {
      // 503: shed or cannot record; any other 5xx, JSON or HTML: a fault. Retry once, at once (another task
      // may answer), never sleep on Retry-After in a checkout; then decide without a score.
      reason = `${status} ${code}`;
      if (status === 503) reason += `, Retry-After ${response.headers.get("Retry-After")}`;
      continue;
    }
    // A 4xx is a bug in this request or a key to fix (the error names the field): retrying cannot help.
    return { pBot: null, reason: message ? `${status} ${code}: ${message}` : `${status} ${code}` };
  }
  return { pBot: null, reason };
}

const [url, paymentId, x1, x2] = process.argv.slice(2);
const result = await score(url, process.env.BOTSCORE_API_KEY, paymentId, Number(x1), Number(x2));
if (result.pBot === null) {
  // Fail open: let the payment through without friction, and count it (docs/clients.md).
  console.log(`${paymentId} no score (${result.reason}): failing open`);
} else {
  console.log(`${paymentId} p_bot=${result.pBot} model=${result.version}`);
}
