/* A misbehaving plugin for the containment tests, in plain C. Function
 * "trap" scores 1 per sample, except where the sample's response contains
 * one of these words:
 *   "CRASH"  segfault;   "HANG"  never return;
 *   "NAN"    a NaN score for that sample;   "SHORT"  one score too few;
 *   "ERROR"  fail the batch with a message;
 *   "HOG"    allocate and touch 1 GiB (fails the batch when that cannot be had).
 * The config "WORD:text" (at most one) treats every sample whose prompt id
 * contains `text` as if its response contained WORD. */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rlpost/reward_plugin.h"

static const char* const kFunctions[] = {"trap", NULL};

typedef struct {
  char word[16];
  char needle[112];
} trap_config;

static rlpost_reward_status trap_config_new(const char* function, const char* config,
                                            size_t config_size, void** config_out,
                                            rlpost_reward_error* error) {
  static trap_config storage;
  const char* colon = strchr(config, ':');
  (void)function;
  memset(&storage, 0, sizeof(storage));
  if (config_size > 0) {
    size_t word = colon == NULL ? 0 : (size_t)(colon - config);
    if (colon == NULL || word >= sizeof(storage.word) ||
        strlen(colon + 1) >= sizeof(storage.needle)) {
      strncpy(error->message, "trap: config must be WORD:text", error->capacity - 1);
      return RLPOST_REWARD_INVALID_ARGUMENT;
    }
    memcpy(storage.word, config, word);
    strcpy(storage.needle, colon + 1);
  }
  *config_out = &storage;
  return RLPOST_REWARD_OK;
}

static const trap_config* g_config = NULL;

static int has(const rlpost_reward_sample* s, const char* word) {
  if (strstr(s->response, word) != NULL) return 1;
  return g_config != NULL && g_config->word[0] != '\0' && strcmp(g_config->word, word) == 0 &&
         strstr(s->prompt_id, g_config->needle) != NULL;
}

static rlpost_reward_status trap_score_batch(void* config, const rlpost_reward_batch* batch,
                                             double* scores, size_t capacity, size_t* written,
                                             rlpost_reward_error* error) {
  size_t i, n = batch->count;
  (void)capacity;
  g_config = (const trap_config*)config;
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
    if (has(s, "HOG")) {
      const size_t bytes = (size_t)1 << 30;
      char* block = malloc(bytes);
      if (block == NULL) {
        strncpy(error->message, "trap: out of memory", error->capacity - 1);
        return RLPOST_REWARD_INTERNAL;
      }
      memset(block, 1, bytes);
      free(block);
    }
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
