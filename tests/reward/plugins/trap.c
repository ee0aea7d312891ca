/* A misbehaving plugin for the containment tests, in plain C. Function
 * "trap" scores 1 per sample, except where the sample's response or prompt
 * id contains a word from the config:
 *   "CRASH"  segfault;   "HANG"  never return;
 *   "NAN"    a NaN score for that sample;   "SHORT"  one score too few;
 *   "ERROR"  fail the batch with a message. */
#include <math.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "rlpost/reward_plugin.h"

static const char* const kFunctions[] = {"trap", NULL};

static rlpost_reward_status trap_config_new(const char* function, const char* config,
                                            size_t config_size, void** config_out,
                                            rlpost_reward_error* error) {
  (void)function;
  (void)config;
  (void)config_size;
  (void)error;
  static int stateless;
  *config_out = &stateless;
  return RLPOST_REWARD_OK;
}

static int has(const rlpost_reward_sample* s, const char* word) {
  return strstr(s->response, word) != NULL || strstr(s->prompt_id, word) != NULL;
}

static rlpost_reward_status trap_score_batch(void* config, const rlpost_reward_batch* batch,
                                             double* scores, size_t capacity, size_t* written,
                                             rlpost_reward_error* error) {
  size_t i, n = batch->count;
  (void)config;
  (void)capacity;
  for (i = 0; i < batch->count; ++i) {
    const rlpost_reward_sample* s =
        (const rlpost_reward_sample*)((const char*)batch->samples + i * batch->sample_size);
    scores[i] = 1.0;
    if (has(s, "CRASH")) raise(SIGSEGV);
    if (has(s, "HANG")) {
      for (;;) pause();
    }
    if (has(s, "NAN")) scores[i] = nan("");
    if (has(s, "SHORT")) n = batch->count - 1;
    if (has(s, "ERROR")) {
      strncpy(error->message, "trap: told to fail", error->capacity - 1);
      return RLPOST_REWARD_INTERNAL;
    }
  }
  *written = n;
  return RLPOST_REWARD_OK;
}

static void trap_config_destroy(void* config) { (void)config; }

RLPOST_REWARD_EXPORT rlpost_reward_status rlpost_reward_plugin_entry(const rlpost_reward_host* host,
                                                                     rlpost_reward_plugin* plugin) {
  (void)host;
  plugin->abi_major = RLPOST_REWARD_ABI_MAJOR;
  plugin->abi_minor = RLPOST_REWARD_ABI_MINOR;
  plugin->name = "trap";
  plugin->version = "0.0.1";
  plugin->functions = kFunctions;
  plugin->config_new = trap_config_new;
  plugin->score_batch = trap_score_batch;
  plugin->config_destroy = trap_config_destroy;
  return RLPOST_REWARD_OK;
}
