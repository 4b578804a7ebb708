// Score a checkout from Java 11+ with java.net.http only (docs/clients.md). No build tool needed:
//
//     BOTSCORE_API_KEY=... java BotScore.java http://127.0.0.1:8887 pay_123 0.1 0.2
//
// A timeout set against the service's p99, the retry table of docs/clients.md, and a decision of your own
// without a score, whatever answers (botscore, or a load balancer's HTML 502): it never throws.

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpTimeoutException;
import java.io.IOException;
import java.time.Duration;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public class BotScore {
    // Per attempt: five times the p99 the service is sized for, never under 100 ms (docs/clients.md).
    // BOTSCORE_TIMEOUT_MS overrides it (the test suite runs on a busy machine).
    static final Duration TIMEOUT = Duration.ofMillis(
            Long.parseLong(System.getenv().getOrDefault("BOTSCORE_TIMEOUT_MS", "250")));
    static final int ATTEMPTS = 2;
    static final Pattern P_BOT = Pattern.compile("\"p_bot\":\\s*([-+0-9.eE]+)");
    static final Pattern CODE = Pattern.compile("\"code\":\\s*\"([a-z_]+)\"");

    record Score(String pBot, String detail) {}

    static Score score(HttpClient client, String url, String key, String paymentId, double x1, double x2)
            throws InterruptedException {
        String body = "{\"x1\": " + x1 + ", \"x2\": " + x2 + "}";
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(url + "/bot-score"))
                .timeout(TIMEOUT)
                .header("Content-Type", "application/json")
                .header("X-Request-ID", paymentId) // the audit row's id: find this payment by it
                .POST(HttpRequest.BodyPublishers.ofString(body));
        if (key != null && !key.isEmpty()) {
            request.header("Authorization", "Bearer " + key);
        }
        String reason = "";
        for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
            HttpResponse<String> response;
            try {
                response = client.send(request.build(), HttpResponse.BodyHandlers.ofString());
            } catch (HttpTimeoutException e) {
                reason = "timeout";
                continue;
            } catch (IOException e) { // refused, reset, closed mid-answer: the path to the service failed
                reason = "connection error";
                continue;
            }
            int status = response.statusCode();
            if (status == 200) {
                Matcher m = P_BOT.matcher(response.body());
                if (m.find()) {
                    return new Score(m.group(1), response.headers().firstValue("X-Model-Version").orElse("?"));
                }
                return new Score(null, "200 not JSON"); // not botscore's answer (a proxy's page): report it, no retry
            }
            Matcher code = CODE.matcher(response.body());
            String errorCode = code.find() ? code.group(1) : "not JSON"; // e.g. a load balancer's HTML 502
            if (status >= 500) {
                // 503: shed or cannot record; any other 5xx, JSON or HTML: a fault. Retry once, at once (another
                // task may answer), never sleep on Retry-After in a checkout; then decide without a score.
                reason = status + " " + errorCode;
                if (status == 503) {
                    reason += ", Retry-After " + response.headers().firstValue("Retry-After").orElse("null");
                }
                continue;
            }
            return new Score(null, status + " " + errorCode); // a 4xx: a bug in the request or a key; no retry
        }
        return new Score(null, reason);
    }

    public static void main(String[] args) throws InterruptedException {
        String url = args[0], paymentId = args[1];
        double x1 = Double.parseDouble(args[2]), x2 = Double.parseDouble(args[3]);
        HttpClient client = HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1) // the service speaks HTTP/1.1; no h2c upgrade attempt
                .connectTimeout(TIMEOUT)
                .build();
        Score score = score(client, url, System.getenv("BOTSCORE_API_KEY"), paymentId, x1, x2);
        if (score.pBot() == null) {
            System.out.println(paymentId + " no score (" + score.detail() + "): failing open");
        } else {
            System.out.println(paymentId + " p_bot=" + score.pBot() + " model=" + score.detail());
        }
    }
}
