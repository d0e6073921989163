#!/usr/bin/env bash
# The harness's own check, with curl and jq only: runs the heart of sdks/scenario.json against a fresh Nexus and the
# scenario upstream (through run.sh), with no SDK in between. It proves the harness, not an SDK: consent through the
# upstream, credential capture, every strategy through the Bridge and directly (curl applies each credential itself;
# SigV4 with curl's own --aws-sigv4 signer), a refresh after expire_access_tokens, attention_required after
# revoke_all_grants, not-found after delete. Ends with "N passed, N failed".
#
#   sdks/scenario/run.sh sdks/scenario/smoke.sh      (or just sdks/scenario/smoke.sh: it calls run.sh itself)
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ -z "${NEXUS_URL:-}" ]; then exec "$here/run.sh" "$here/smoke.sh"; fi

passed=0; failed=0
check() { # name, condition-command...
  local name="$1"; shift
  if "$@"; then passed=$((passed + 1)); echo "ok   $name"; else failed=$((failed + 1)); echo "FAIL $name"; fi
}
sub() { sed -e "s#{nexus}#$NEXUS_URL#g" -e "s#{upstream}#$NEXUS_SCENARIO_UPSTREAM#g"; }
S="$(sub < "$NEXUS_SCENARIO")"
q() { jq -r "$@" <<<"$S"; }
admin() { curl -s -H "X-API-Key: $NEXUS_ADMIN_API_KEY" -H 'Content-Type: application/json' "$@"; }
gw() { curl -s -H "X-API-Key: $KEY" -H 'Content-Type: application/json' "$@"; }
ws="$(q .workspace_id)"

KEY="$(admin -X POST "$NEXUS_URL/v1/admin/api-keys" -d "$(q .api_key)" | jq -r .api_key)"
check "create_api_key" test -n "$KEY" -a "$KEY" != null

for i in $(seq 0 $(($(q '.providers|length') - 1))); do
  code="$(admin -o /dev/null -w '%{http_code}' -X POST "$NEXUS_URL/v1/providers" -d "$(q ".providers[$i].registration")")"
  check "register $(q ".providers[$i].name")" test "$code" = 201
done

R="$(gw -X POST "$NEXUS_URL/v1/request-connection" -d "{\"workspace_id\":\"$ws\",\"provider_name\":\"scenario-oauth2\",\"scopes\":[\"read\",\"write\"],\"return_url\":\"$(q .return_url)\"}")"
OAUTH="$(jq -r .connection_id <<<"$R")"
check "request_connection oauth2" test "$(jq -r .auth_url <<<"$R" | cut -c1-$((${#NEXUS_SCENARIO_UPSTREAM} + 16)))" = "$NEXUS_SCENARIO_UPSTREAM/oauth/authorize"
callback="$(curl -s -o /dev/null -w '%{redirect_url}' "$(jq -r .auth_url <<<"$R")")"
back="$(curl -s -o /dev/null -w '%{redirect_url}' "$callback")"
check "complete_consent" grep -q "status=active" <<<"$back"
check "active" test "$(gw "$NEXUS_URL/v1/connections/$OAUTH" | jq -r .status)" = active

declare -A CONN
for name in scenario-header-key scenario-query-key scenario-basic scenario-sigv4; do
  id="$(gw -X POST "$NEXUS_URL/v1/request-connection" -d "{\"workspace_id\":\"$ws\",\"provider_name\":\"$name\",\"return_url\":\"$(q .return_url)\"}" | jq -r .connection_id)"
  code="$(gw -o /dev/null -w '%{http_code}' -X POST "$NEXUS_URL/v1/connections/$id/credentials" -d "$(q ".providers[] | select(.name == \"$name\") | .credentials")")"
  CONN[$name]="$id"
  check "capture $name ($code)" test "$(gw "$NEXUS_URL/v1/connections/$id" | jq -r .status)" = active
done

ok_as() { # json, strategy, principal
  [ "$(jq -r '[.ok, .strategy, .principal] | join(" ")' <<<"$1")" = "true $2 $3" ] || { echo "     got: $1"; return 1; }
}
check "bridge oauth2" ok_as "$(gw "$NEXUS_URL/v1/bridge/$OAUTH/whoami?page=2")" oauth2 scenario-user
check "bridge header key" ok_as "$(gw "$NEXUS_URL/v1/bridge/${CONN[scenario-header-key]}/whoami")" api_key header-key-owner
check "bridge query key" ok_as "$(gw "$NEXUS_URL/v1/bridge/${CONN[scenario-query-key]}/whoami?page=2")" api_key query-key-owner
check "bridge basic" ok_as "$(gw "$NEXUS_URL/v1/bridge/${CONN[scenario-basic]}/whoami")" basic_auth scenario-basic-user
check "bridge sigv4 POST" ok_as "$(gw -X POST "$NEXUS_URL/v1/bridge/${CONN[scenario-sigv4]}/items" -d '{"name":"scenario"}')" aws_sigv4 AKIDSCENARIOEXAMPLE1

T="$(gw "$NEXUS_URL/v1/token/$OAUTH")"
check "direct oauth2" ok_as "$(curl -s -H "Authorization: Bearer $(jq -r .credentials.access_token <<<"$T")" "$NEXUS_SCENARIO_UPSTREAM/echo/scenario-oauth2/whoami")" oauth2 scenario-user
T="$(gw "$NEXUS_URL/v1/token/${CONN[scenario-header-key]}")"
check "direct header key" ok_as "$(curl -s -H "$(jq -r '.strategy.name + ": " + .strategy.prefix + .credentials.api_key' <<<"$T")" "$NEXUS_SCENARIO_UPSTREAM/echo/scenario-header-key/whoami")" api_key header-key-owner
T="$(gw "$NEXUS_URL/v1/token/${CONN[scenario-query-key]}")"
check "direct query key" ok_as "$(curl -s -G --data-urlencode "$(jq -r '.strategy.name + "=" + .strategy.prefix + .credentials.api_key' <<<"$T")" "$NEXUS_SCENARIO_UPSTREAM/echo/scenario-query-key/whoami")" api_key query-key-owner
T="$(gw "$NEXUS_URL/v1/token/${CONN[scenario-basic]}")"
check "direct basic" ok_as "$(curl -s -u "$(jq -r '.credentials.username + ":" + .credentials.password' <<<"$T")" "$NEXUS_SCENARIO_UPSTREAM/echo/scenario-basic/whoami")" basic_auth scenario-basic-user
T="$(gw "$NEXUS_URL/v1/token/${CONN[scenario-sigv4]}")"
# The query is already in canonical (sorted) order: curl before 8.x does not sort it when it signs.
check "direct sigv4 (curl --aws-sigv4)" ok_as "$(curl -s --aws-sigv4 "aws:amz:$(jq -r .strategy.region <<<"$T"):$(jq -r .strategy.service <<<"$T")" \
  -u "$(jq -r '.credentials.access_key_id + ":" + .credentials.secret_access_key' <<<"$T")" -H "X-Amz-Security-Token: $(jq -r .credentials.session_token <<<"$T")" \
  -H 'Content-Type: application/json' -d '{"name":"scenario"}' "$NEXUS_SCENARIO_UPSTREAM/echo/scenario-sigv4/items?a=1&b=2")" aws_sigv4 AKIDSCENARIOEXAMPLE1
check "wrong key is 401" test "$(curl -s -o /dev/null -w '%{http_code}' -H 'X-Scenario-Key: Token nope' "$NEXUS_SCENARIO_UPSTREAM/echo/scenario-header-key/whoami")" = 401

curl -s -X POST "$NEXUS_SCENARIO_UPSTREAM/control/expire-access-tokens" >/dev/null
old="$(gw "$NEXUS_URL/v1/token/$OAUTH" | jq -r .credentials.access_token)"
check "expired access token is 401" test "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $old" "$NEXUS_SCENARIO_UPSTREAM/echo/scenario-oauth2/whoami")" = 401
check "force refresh" test "$(gw -X POST "$NEXUS_URL/v1/refresh/$OAUTH" | jq -r .status)" = active
new="$(gw "$NEXUS_URL/v1/token/$OAUTH" | jq -r .credentials.access_token)"
check "refreshed token works" ok_as "$(curl -s -H "Authorization: Bearer $new" "$NEXUS_SCENARIO_UPSTREAM/echo/scenario-oauth2/whoami")" oauth2 scenario-user

curl -s -X POST "$NEXUS_SCENARIO_UPSTREAM/control/revoke-all-grants" >/dev/null
P="$(gw -X POST "$NEXUS_URL/v1/refresh/$OAUTH")"
check "force refresh → attention_required" test "$(jq -r '[.code, .status, .error] | join(" ")' <<<"$P")" = "connection_not_active attention_required invalid_grant"
check "token → attention_required" test "$(gw "$NEXUS_URL/v1/token/$OAUTH" | jq -r .status)" = attention_required

check "delete" test "$(gw -o /dev/null -w '%{http_code}' -X DELETE "$NEXUS_URL/v1/connections/$OAUTH")" = 204
check "deleted → 404" test "$(gw -o /dev/null -w '%{http_code}' "$NEXUS_URL/v1/connections/$OAUTH")" = 404
check "upstream saw no refresh token reuse" test "$(curl -s "$NEXUS_SCENARIO_UPSTREAM/control/stats" | jq -r .reused_refresh_tokens)" = 0

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
