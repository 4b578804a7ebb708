"""Operations: metrics, JSON logs, memory tuning and process discovery; nothing here knows a request."""
