package nexus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Webhook event types (README, Webhooks).
const (
	// EventConnectionActive: the user completed consent (Reason "connected", or "reconnected" after Reconnect), or
	// a manual refresh brought an attention_required connection back (Reason "refreshed").
	EventConnectionActive = "connection.active"
	// EventConnectionAttentionRequired: the provider rejected a refresh, or the token expired without a refresh
	// token: ask the user to connect again.
	EventConnectionAttentionRequired = "connection.attention_required"
	// EventConnectionRefreshFailed: the first transient refresh failure of a streak; Nexus keeps retrying.
	EventConnectionRefreshFailed = "connection.refresh_failed"
	// EventConnectionRecovered: a refresh succeeded after transient failures, once per streak (Failures says how
	// many there were).
	EventConnectionRecovered = "connection.recovered"
	// EventConnectionRevoked: the connection was deleted.
	EventConnectionRevoked = "connection.revoked"
	// EventWebhookTest: POST /v1/admin/webhooks/{id}/test.
	EventWebhookTest = "webhook.test"
)

// WebhookTolerance is how far a delivery's webhook-timestamp may be from now before VerifyWebhook refuses it as a
// possible replay.
const WebhookTolerance = 5 * time.Minute

// ErrWebhookSignature: the delivery is not signed with the secret, or its timestamp is too old or too new.
var ErrWebhookSignature = errors.New("nexus: webhook signature not valid")

// WebhookEvent is one delivery's body: {"id", "type", "timestamp", "workspace_id", "data"}. Nothing in it is a
// secret.
type WebhookEvent struct {
	ID          string
	Type        string // one of the Event… constants (others may be added: ignore those you do not know)
	Timestamp   time.Time
	WorkspaceID string
	// Data is the event's data for the connection.* events; Raw is the data as sent, for any event.
	Data ConnectionEventData
	Raw  json.RawMessage
}

// ConnectionEventData is the data of the connection.* events; which fields are set depends on the type.
type ConnectionEventData struct {
	ConnectionID       string    `json:"connection_id"`
	Provider           string    `json:"provider"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason"`              // connection.active: connected, reconnected, refreshed
	Error              string    `json:"error"`               // attention_required, refresh_failed
	ErrorDescription   string    `json:"error_description"`   // attention_required, refresh_failed
	Failures           int       `json:"failures"`            // refresh_failed, recovered
	PreviousStatus     string    `json:"previous_status"`     // revoked
	ProviderRevocation string    `json:"provider_revocation"` // revoked
	ExpiresAt          time.Time `json:"-"`
	RetryAt            time.Time `json:"-"` // refresh_failed
}

// VerifyWebhook checks a delivery's Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature:
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>", keyed with the base64 part of secret after "whsec_"), refuses
// timestamps more than WebhookTolerance from now, and returns the parsed event. body must be the raw request body.
// The comparison is in constant time. Any failure wraps ErrWebhookSignature (or is a JSON error for a signed body
// that is not an event).
func VerifyWebhook(secret string, header http.Header, body []byte) (*WebhookEvent, error) {
	return verifyWebhook(secret, header, body, time.Now())
}

func verifyWebhook(secret string, header http.Header, body []byte, now time.Time) (*WebhookEvent, error) {
	id, ts, sigs := header.Get("webhook-id"), header.Get("webhook-timestamp"), header.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return nil, fmt.Errorf("%w: webhook-id, webhook-timestamp or webhook-signature missing", ErrWebhookSignature)
	}
	seconds, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: webhook-timestamp is not a number", ErrWebhookSignature)
	}
	if d := now.Sub(time.Unix(seconds, 0)); d > WebhookTolerance || d < -WebhookTolerance {
		return nil, fmt.Errorf("%w: webhook-timestamp is %s away from now", ErrWebhookSignature, d.Round(time.Second))
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("%w: the secret is not a whsec_ secret", ErrWebhookSignature)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	expected := []byte("v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	valid := false
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal(expected, []byte(s)) {
			valid = true
		}
	}
	if !valid {
		return nil, ErrWebhookSignature
	}
	return ParseWebhookEvent(body)
}

// ParseWebhookEvent reads a delivery's body without checking its signature: use VerifyWebhook on requests.
func ParseWebhookEvent(body []byte) (*WebhookEvent, error) {
	var w struct {
		ID          string          `json:"id"`
		Type        string          `json:"type"`
		Timestamp   int64           `json:"timestamp"`
		WorkspaceID string          `json:"workspace_id"`
		Data        json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, fmt.Errorf("nexus: reading the webhook event: %w", err)
	}
	e := &WebhookEvent{ID: w.ID, Type: w.Type, Timestamp: unix(w.Timestamp), WorkspaceID: w.WorkspaceID, Raw: w.Data}
	if strings.HasPrefix(w.Type, "connection.") && len(w.Data) > 0 {
		var times struct {
			ExpiresAt *int64 `json:"expires_at"`
			RetryAt   *int64 `json:"retry_at"`
		}
		if err := json.Unmarshal(w.Data, &e.Data); err != nil {
			return nil, fmt.Errorf("nexus: reading the webhook event's data: %w", err)
		}
		_ = json.Unmarshal(w.Data, &times)
		if times.ExpiresAt != nil {
			e.Data.ExpiresAt = unix(*times.ExpiresAt)
		}
		if times.RetryAt != nil {
			e.Data.RetryAt = unix(*times.RetryAt)
		}
	}
	return e, nil
}
