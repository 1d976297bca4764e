/*
 * biokiosk_rate_limit: a mosquitto 2.x plugin that limits how fast each client may publish on the kiosks' topics.
 *
 * Why: one compromised kiosk that writes 10,000 messages as fast as its connection allows has them all accepted
 * and queued, in order, for the verifier's one session; every honest attestation published meanwhile waits behind
 * them. The verifier's own defences (failure budget, quarantine) act only once the junk reaches it, and the
 * broker's dynamic-security commands are themselves answered only after the flood already written has been read.
 * Refusing the excess at the broker, message by message, keeps it out of every verifier's queue.
 *
 * Each client id (bound to the identity by the fleet configuration) has a token bucket: `rate` messages per second,
 * up to `burst` at once. A publish on a limited topic costs a token; with none left it is refused (MQTT 5: PUBACK
 * reason 0x87, not authorised; 3.1.1 has no way to say so) and is not delivered to anyone. An honest kiosk keeps
 * what was refused in its outbox and sends it again later, so nothing is lost. Other topics (the verifiers'
 * verdicts and nonce answers, $CONTROL) are never limited.
 *
 *   plugin /usr/lib/biokiosk/biokiosk_rate_limit.so
 *   plugin_opt_rate 50            messages per second per client (default 50)
 *   plugin_opt_burst 300          publishes a client may make at once (default 300; at least 1)
 *   plugin_opt_topics biokiosk/v1/+/attestations biokiosk/v1/+/challenges/request biokiosk/v1/+/status
 *   plugin_opt_disconnect_after 100   a client refused this many publishes in a row is disconnected (0: never)
 *   plugin_opt_max_clients 100000 clients tracked at once (default 100000)
 *
 * Memory is bounded: a client whose bucket has refilled is forgotten when room is needed (a full bucket is what a
 * new client gets, so forgetting it changes nothing). When every tracked client is mid-burst and the table is
 * full, an unseen client is let through untracked rather than refused: the limit must never turn away an honest
 * kiosk because others are flooding.
 *
 * Build: scripts/build-broker-plugin.sh (needs gcc and Debian's mosquitto-dev and libmosquitto-dev).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define MAX_TOPICS 16

struct bucket {
	char *id; /* NULL: empty slot */
	uint64_t hash;
	double tokens;
	double last; /* seconds, monotonic */
	unsigned long refused_run; /* publishes refused since the last one let through */
	bool warned;
};

struct limiter {
	mosquitto_plugin_id_t *pid;
	double rate;
	double burst;
	char *topics[MAX_TOPICS];
	int topic_count;
	unsigned long disconnect_after; /* 0: never */
	size_t max_clients;
	size_t capacity; /* power of two, at least twice max_clients */
	size_t count;
	struct bucket *table;
	bool warned_full;
};

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* FNV-1a: the table's keys are client ids the broker has authenticated, not attacker-chosen at will. */
static uint64_t hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for(; *s; s++){
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static void refill(const struct limiter *l, struct bucket *b, double now)
{
	if(now > b->last){
		b->tokens = fmin(l->burst, b->tokens + (now - b->last) * l->rate);
		b->last = now;
	}
}

static struct bucket *slot_for(struct bucket *table, size_t capacity, const char *id, uint64_t h)
{
	size_t mask = capacity - 1;
	for(size_t i = h & mask;; i = (i + 1) & mask){
		if(table[i].id == NULL) return &table[i];
		if(table[i].hash == h && strcmp(table[i].id, id) == 0) return &table[i];
	}
}

/* Forgets the clients whose bucket has refilled (rebuilding the table, as linear probing has no cheap delete). */
static int sweep(struct limiter *l, double now)
{
	struct bucket *fresh = calloc(l->capacity, sizeof(struct bucket));
	if(fresh == NULL) return MOSQ_ERR_NOMEM;
	size_t kept = 0;
	for(size_t i = 0; i < l->capacity; i++){
		struct bucket *b = &l->table[i];
		if(b->id == NULL) continue;
		refill(l, b, now);
		if(b->tokens >= l->burst){
			free(b->id);
			continue;
		}
		*slot_for(fresh, l->capacity, b->id, b->hash) = *b;
		kept++;
	}
	free(l->table);
	l->table = fresh;
	l->count = kept;
	return MOSQ_ERR_SUCCESS;
}

/* The client's bucket, created full on first sight; NULL when it cannot be tracked (let through). */
static struct bucket *bucket_for(struct limiter *l, const char *id, double now)
{
	uint64_t h = hash_id(id);
	struct bucket *b = slot_for(l->table, l->capacity, id, h);
	if(b->id != NULL) return b;
	if(l->count >= l->max_clients){
		if(sweep(l, now) != MOSQ_ERR_SUCCESS) return NULL;
		if(l->count >= l->max_clients){
			if(!l->warned_full){
				mosquitto_log_printf(MOSQ_LOG_WARNING, "biokiosk_rate_limit: %zu clients are all over their rate; new clients are not limited until some slow down", l->count);
				l->warned_full = true;
			}
			return NULL;
		}
		l->warned_full = false;
		b = slot_for(l->table, l->capacity, id, h);
	}
	b->id = strdup(id);
	if(b->id == NULL) return NULL;
	b->hash = h;
	b->tokens = l->burst;
	b->last = now;
	b->warned = false;
	b->refused_run = 0;
	l->count++;
	return b;
}

static bool limited_topic(const struct limiter *l, const char *topic)
{
	for(int i = 0; i < l->topic_count; i++){
		bool match = false;
		if(mosquitto_topic_matches_sub(l->topics[i], topic, &match) == MOSQ_ERR_SUCCESS && match) return true;
	}
	return false;
}

static int on_message(int event, void *event_data, void *userdata)
{
	(void)event;
	struct mosquitto_evt_message *ed = event_data;
	struct limiter *l = userdata;
	if(ed->topic == NULL || !limited_topic(l, ed->topic)) return MOSQ_ERR_SUCCESS;
	const char *id = mosquitto_client_id(ed->client);
	if(id == NULL) return MOSQ_ERR_SUCCESS;
	double now = now_seconds();
	struct bucket *b = bucket_for(l, id, now);
	if(b == NULL) return MOSQ_ERR_SUCCESS;
	refill(l, b, now);
	if(b->tokens >= 1.0){
		b->tokens -= 1.0;
		b->refused_run = 0;
		if(b->tokens >= l->burst / 2) b->warned = false;
		return MOSQ_ERR_SUCCESS;
	}
	b->refused_run++;
	if(!b->warned){
		/* Once per episode: a flood must not become a flood of log lines. */
		mosquitto_log_printf(MOSQ_LOG_WARNING, "biokiosk_rate_limit: client %s is over %g messages/s (burst %g): its publishes on the kiosks' topics are refused until it slows down", id, l->rate, l->burst);
		b->warned = true;
	}
	if(l->disconnect_after > 0 && b->refused_run >= l->disconnect_after){
		/* Refusing costs the broker a read and an answer per message, and mosquitto reads all a connection has
		 * buffered before it serves anyone else: a flood already written would hold every other client up for as
		 * long as it takes to refuse it. Closing the connection now drops what has not been read. mosquitto's own
		 * dynamic-security plugin kicks a client from inside that client's publish the same way (an admin deleting
		 * itself); the client's id is freed by the kick, so it is logged first. */
		mosquitto_log_printf(MOSQ_LOG_WARNING, "biokiosk_rate_limit: client %s disconnected after %lu publishes in a row over its rate", id, l->disconnect_after);
		b->refused_run = 0;
		mosquitto_kick_client_by_clientid(id, false);
	}
	return MOSQ_ERR_ACL_DENIED;
}

static int parse_positive(const char *key, const char *value, double *out)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(value, &end);
	if(errno != 0 || end == value || *end != '\0' || !isfinite(v) || v <= 0){
		mosquitto_log_printf(MOSQ_LOG_ERR, "biokiosk_rate_limit: plugin_opt_%s must be a positive number, not \"%s\"", key, value);
		return MOSQ_ERR_INVAL;
	}
	*out = v;
	return MOSQ_ERR_SUCCESS;
}

static int parse_topics(struct limiter *l, const char *value)
{
	char *copy = strdup(value);
	if(copy == NULL) return MOSQ_ERR_NOMEM;
	char *save = NULL;
	int rc = MOSQ_ERR_SUCCESS;
	for(char *t = strtok_r(copy, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)){
		if(l->topic_count == MAX_TOPICS){
			mosquitto_log_printf(MOSQ_LOG_ERR, "biokiosk_rate_limit: plugin_opt_topics has more than %d filters", MAX_TOPICS);
			rc = MOSQ_ERR_INVAL;
			break;
		}
		if(mosquitto_sub_topic_check(t) != MOSQ_ERR_SUCCESS){
			mosquitto_log_printf(MOSQ_LOG_ERR, "biokiosk_rate_limit: plugin_opt_topics: \"%s\" is not a valid topic filter", t);
			rc = MOSQ_ERR_INVAL;
			break;
		}
		l->topics[l->topic_count] = strdup(t);
		if(l->topics[l->topic_count] == NULL){
			rc = MOSQ_ERR_NOMEM;
			break;
		}
		l->topic_count++;
	}
	free(copy);
	if(rc == MOSQ_ERR_SUCCESS && l->topic_count == 0){
		mosquitto_log_printf(MOSQ_LOG_ERR, "biokiosk_rate_limit: plugin_opt_topics names no topic filter");
		rc = MOSQ_ERR_INVAL;
	}
	return rc;
}

static void free_limiter(struct limiter *l)
{
	if(l == NULL) return;
	if(l->table != NULL){
		for(size_t i = 0; i < l->capacity; i++) free(l->table[i].id);
		free(l->table);
	}
	for(int i = 0; i < l->topic_count; i++) free(l->topics[i]);
	free(l);
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for(int i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options, int option_count)
{
	struct limiter *l = calloc(1, sizeof(struct limiter));
	if(l == NULL) return MOSQ_ERR_NOMEM;
	l->pid = identifier;
	l->rate = 50;
	l->burst = 300;
	l->max_clients = 100000;
	l->disconnect_after = 100;
	int rc = MOSQ_ERR_SUCCESS;
	for(int i = 0; i < option_count && rc == MOSQ_ERR_SUCCESS; i++){
		const char *k = options[i].key, *v = options[i].value;
		if(strcmp(k, "rate") == 0) rc = parse_positive(k, v, &l->rate);
		else if(strcmp(k, "burst") == 0){
			rc = parse_positive(k, v, &l->burst);
			if(rc == MOSQ_ERR_SUCCESS && l->burst < 1){
				mosquitto_log_printf(MOSQ_LOG_ERR, "biokiosk_rate_limit: plugin_opt_burst must be at least 1, not \"%s\"", v);
				rc = MOSQ_ERR_INVAL;
			}
		}else if(strcmp(k, "topics") == 0) rc = parse_topics(l, v);
		else if(strcmp(k, "disconnect_after") == 0){
			char *end = NULL;
			errno = 0;
			unsigned long n = strtoul(v, &end, 10);
			if(errno != 0 || end == v || *end != '\0' || v[0] == '-' || n > 100000000UL){
				mosquitto_log_printf(MOSQ_LOG_ERR, "biokiosk_rate_limit: plugin_opt_disconnect_after must be a whole number of publishes (0: never), not \"%s\"", v);
				rc = MOSQ_ERR_INVAL;
			}
			l->disconnect_after = n;
		}
		else if(strcmp(k, "max_clients") == 0){
			double n = 0;
			rc = parse_positive(k, v, &n);
			if(rc == MOSQ_ERR_SUCCESS && (n != floor(n) || n > 100000000)){
				mosquitto_log_printf(MOSQ_LOG_ERR, "biokiosk_rate_limit: plugin_opt_max_clients must be a whole number up to 100000000, not \"%s\"", v);
				rc = MOSQ_ERR_INVAL;
			}
			l->max_clients = (size_t)n;
		}else{
			mosquitto_log_printf(MOSQ_LOG_ERR, "biokiosk_rate_limit: unknown option plugin_opt_%s (known: rate, burst, topics, disconnect_after, max_clients)", k);
			rc = MOSQ_ERR_INVAL;
		}
	}
	if(rc == MOSQ_ERR_SUCCESS && l->topic_count == 0){
		rc = parse_topics(l, "biokiosk/v1/+/attestations biokiosk/v1/+/challenges/request biokiosk/v1/+/status");
	}
	if(rc == MOSQ_ERR_SUCCESS){
		l->capacity = 16;
		while(l->capacity < l->max_clients * 2) l->capacity *= 2;
		l->table = calloc(l->capacity, sizeof(struct bucket));
		if(l->table == NULL) rc = MOSQ_ERR_NOMEM;
	}
	if(rc == MOSQ_ERR_SUCCESS) rc = mosquitto_callback_register(identifier, MOSQ_EVT_MESSAGE, on_message, NULL, l);
	if(rc != MOSQ_ERR_SUCCESS){
		free_limiter(l);
		return rc;
	}
	mosquitto_log_printf(MOSQ_LOG_INFO, "biokiosk_rate_limit: %g messages/s per client, burst %g, disconnected after %lu refused in a row, on %d topic filter(s)", l->rate, l->burst, l->disconnect_after, l->topic_count);
	*userdata = l;
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	(void)options;
	(void)option_count;
	struct limiter *l = userdata;
	if(l == NULL) return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(l->pid, MOSQ_EVT_MESSAGE, on_message, NULL);
	free_limiter(l);
	return MOSQ_ERR_SUCCESS;
}
