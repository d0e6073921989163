package nexus

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
)

// A DELETE that succeeded but whose answer was lost (a proxy's 502) is retried and meets a 404: that is success. A
// 404 on the first attempt is still NotFound.
func TestADeleteRetriedAfterA502IsDoneWhenTheRetryFindsItGone(t *testing.T) {
	f := newFakeNexus(t)
	var n int64
	f.other = func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodDelete {
			writeProblem(w, 404, "not_found", nil)
			return
		}
		if atomic.AddInt64(&n, 1) == 1 {
			w.WriteHeader(502) // the delete happened; a proxy lost the answer
			return
		}
		writeProblem(w, 404, "not_found", nil)
	}
	c := f.client(t)
	if err := c.DeleteConnection(context.Background(), "conn_1"); err != nil || atomic.LoadInt64(&n) != 2 {
		t.Fatalf("got %v after %d requests", err, n)
	}
	if err := c.DeleteConnection(context.Background(), "conn_1"); !errors.Is(err, ErrNotFound) || atomic.LoadInt64(&n) != 3 {
		t.Fatalf("a first 404: got %v after %d requests", err, n)
	}
}
