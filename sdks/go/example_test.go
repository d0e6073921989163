package nexus_test

import (
	"errors"
	"log"
	"net/http"

	nexus "github.com/nexus-oss/nexus/sdks/go"
)

func askUserToReconnect(connectionID, reason string) {}

// The README's example: call a provider's API with a connection (compiled, not run).
func Example() {
	connectionID := "conn_01M80YDB84VHHSP9KSJ76G6KY4"
	client, err := nexus.NewClient() // NEXUS_URL and NEXUS_API_KEY from the environment
	if err != nil {
		log.Fatal(err)
	}
	github := client.HTTPClient(connectionID) // an *http.Client whose requests carry the connection's credential
	resp, err := github.Get("https://api.github.com/user")
	var attention *nexus.AttentionRequiredError
	if errors.As(err, &attention) {
		askUserToReconnect(attention.ConnectionID, attention.Reason) // e.g. invalid_grant
	}
	_ = resp
}

// Through the Bridge: the credential never reaches this process.
func ExampleClient_BridgeURL() {
	client, err := nexus.NewClient()
	if err != nil {
		log.Fatal(err)
	}
	connectionID := "conn_01M80YDB84VHHSP9KSJ76G6KY4"
	bridge := client.HTTPClient(connectionID, nexus.ViaBridge())
	req, _ := http.NewRequest("GET", client.BridgeURL(connectionID)+"/user", nil) // the provider's api_base_url + /user
	resp, err := bridge.Do(req)
	_, _ = resp, err
}
