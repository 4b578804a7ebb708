-- wrk: POST one transaction per request.
wrk.method = "POST"
wrk.body = '{"x1": 0.1, "x2": 0.2}'
wrk.headers["Content-Type"] = "application/json"
