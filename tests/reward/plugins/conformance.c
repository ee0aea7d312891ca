/* ABI conformance plugin, in plain C99: exercises every part of
 * reward_plugin.h the way a C plugin author would, and checks what the host
 * hands it. Functions:
 *   field_echo  score = response_size + 1000 * token_count + 0.5 * correct
 *               + verifier_score / 10 + group * 1e6 + index_in_group * 1e-3,
 *               so a test can recover every field from the score;
 *               config "fail" makes score_batch fail with a message.
 *   constant    score = the number in the config (default 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlpost/reward_plugin.h"

static const rlpost_reward_host* g_host = NULL;
static int g_live_configs = 0;
static const char* const kFunctions[] = {"field_echo", "constant", NULL};

typedef struct {
  int kind; /* 0 field_echo, 1 constant */
  int fail;
  double constant;
} config_t;

static void set_error(rlpost_reward_error* e, const char* message) {
  if (e == NULL || e->message == NULL || e->capacity == 0) return;
  strncpy(e->message, message, e->capacity - 1);
  e->message[e->capacity - 1] = '\0';
}

static rlpost_reward_status conf_init(const rlpost_reward_host* host, rlpost_reward_error* error) {
  if (host->struct_size < sizeof(rlpost_reward_host) || host->abi_major != RLPOST_REWARD_ABI_MAJOR) {
    set_error(error, "unexpected host table");
    return RLPOST_REWARD_UNSUPPORTED;
  }
  g_host = host;
  if (host->log != NULL) host->log(host->host_context, RLPOST_REWARD_LOG_INFO, "conformance: init");
  return RLPOST_REWARD_OK;
}

static rlpost_reward_status conf_config_new(const char* function, const char* config,
                                            size_t config_size, void** config_out,
                                            rlpost_reward_error* error) {
  config_t* c;
  if (config[config_size] != '\0') {
    set_error(error, "config bytes are not NUL-terminated");
    return RLPOST_REWARD_INVALID_ARGUMENT;
  }
  c = (config_t*)calloc(1, sizeof(config_t));
  if (c == NULL) return RLPOST_REWARD_INTERNAL;
  if (strcmp(function, "field_echo") == 0) {
    c->kind = 0;
    c->fail = strcmp(config, "fail") == 0;
    if (!c->fail && config_size != 0) {
      free(c);
      set_error(error, "field_echo takes no config except 'fail'");
      return RLPOST_REWARD_INVALID_ARGUMENT;
    }
  } else if (strcmp(function, "constant") == 0) {
    char* end = NULL;
    c->kind = 1;
    c->constant = config_size == 0 ? 0.0 : strtod(config, &end);
    if (config_size != 0 && *end != '\0') {
      free(c);
      set_error(error, "constant: config must be a number");
      return RLPOST_REWARD_INVALID_ARGUMENT;
    }
  } else {
    free(c);
    set_error(error, "unknown function");
    return RLPOST_REWARD_INVALID_ARGUMENT;
  }
  ++g_live_configs;
  *config_out = c;
  return RLPOST_REWARD_OK;
}

static rlpost_reward_status conf_score_batch(void* config, const rlpost_reward_batch* batch,
                                             double* scores, size_t capacity, size_t* written,
                                             rlpost_reward_error* error) {
  const config_t* c = (const config_t*)config;
  size_t i;
  *written = 0;
  if (c->fail) {
    set_error(error, "field_echo was told to fail");
    return RLPOST_REWARD_INTERNAL;
  }
  if (capacity != batch->count || batch->sample_size < sizeof(rlpost_reward_sample)) {
    set_error(error, "capacity or sample_size is wrong");
    return RLPOST_REWARD_INTERNAL;
  }
  for (i = 0; i < batch->count; ++i) {
    const rlpost_reward_sample* s =
        (const rlpost_reward_sample*)((const char*)batch->samples + i * batch->sample_size);
    if (c->kind == 1) {
      scores[i] = c->constant;
      continue;
    }
    /* Strings are NUL-terminated at their size. */
    if (s->response[s->response_size] != '\0' || s->prompt[s->prompt_size] != '\0' ||
        s->reference[s->reference_size] != '\0' || s->verdict[s->verdict_size] != '\0') {
      set_error(error, "a string is not NUL-terminated");
      return RLPOST_REWARD_INTERNAL;
    }
    scores[i] = (double)s->response_size + 1000.0 * (double)s->response_token_count +
                0.5 * (double)s->correct + s->verifier_score / 10.0 + 1e6 * (double)s->group +
                1e-3 * (double)s->index_in_group;
  }
  *written = batch->count;
  return RLPOST_REWARD_OK;
}

static void conf_config_destroy(void* config) {
  --g_live_configs;
  free(config);
}

static void conf_fini(void) {
  if (g_live_configs != 0) {
    fprintf(stderr, "conformance: fini with %d live configs\n", g_live_configs);
    abort();
  }
  g_host = NULL;
}

RLPOST_REWARD_EXPORT rlpost_reward_status rlpost_reward_plugin_entry(const rlpost_reward_host* host,
                                                                     rlpost_reward_plugin* plugin) {
  if (host->abi_major != RLPOST_REWARD_ABI_MAJOR) return RLPOST_REWARD_UNSUPPORTED;
  if (plugin->struct_size < sizeof(rlpost_reward_plugin)) return RLPOST_REWARD_UNSUPPORTED;
  plugin->abi_major = RLPOST_REWARD_ABI_MAJOR;
  plugin->abi_minor = RLPOST_REWARD_ABI_MINOR;
  plugin->name = "conformance";
  plugin->version = "1.2.3";
  plugin->functions = kFunctions;
  plugin->init = conf_init;
  plugin->config_new = conf_config_new;
  plugin->score_batch = conf_score_batch;
  plugin->config_destroy = conf_config_destroy;
  plugin->fini = conf_fini;
  return RLPOST_REWARD_OK;
}
