/*
 * rlpost reward plugin ABI, version 1.0.
 *
 * A reward plugin is a shared library that exports one C function,
 * RLPOST_REWARD_ENTRY_NAME ("rlpost_reward_plugin_entry"), of type
 * rlpost_reward_entry_fn. This header is the whole contract: it depends on
 * nothing but <stdint.h> and <stddef.h>, and a plugin may be written in C,
 * C++ (see reward_plugin.hpp) or anything that can export a C function.
 *
 * Handshake
 *   The host fills an rlpost_reward_host table and zeroes an
 *   rlpost_reward_plugin table whose struct_size it sets to the size it knows,
 *   then calls the entry function once. The plugin writes its ABI version and
 *   hooks into the plugin table (never more than plugin->struct_size bytes)
 *   and returns RLPOST_REWARD_OK. Both tables start with their size and ABI
 *   major/minor version. The host checks the plugin's version before calling
 *   any hook: a different major version is rejected (the plugin is unloaded
 *   without init); a newer minor version of the same major is accepted, and
 *   fields the host does not know are ignored. A plugin that needs a newer
 *   host minor version than host->abi_minor must return
 *   RLPOST_REWARD_UNSUPPORTED from the entry function.
 *
 * Call order
 *   entry -> init -> config_new ... (score_batch ...)* ... config_destroy
 *   -> fini. A plugin may offer several reward functions; config_new picks
 *   one by name and parses its configuration bytes (an opaque string from the
 *   run config, e.g. "key=value" lines or JSON: the plugin defines the
 *   format). Every config_new that succeeded is matched by one
 *   config_destroy before fini.
 *
 * Errors
 *   Hooks return an rlpost_reward_status code. On failure they may write a
 *   NUL-terminated message of at most error->capacity bytes (NUL included)
 *   into error->message, a buffer the host owns; the host reports it with
 *   the plugin's name. A plugin never stores the pointer.
 *
 * Ownership
 *   Everything the host passes (the plugin table, samples, strings, token
 *   ids, the score array, the error buffer) is owned by the host and valid
 *   only during the call; the host table alone stays valid until fini
 *   returns, so a plugin may keep its pointer to call log. Strings are UTF-8 with an explicit length and are also
 *   NUL-terminated. The strings a plugin returns in its table (name,
 *   version, function names) are owned by the plugin and must stay valid
 *   until fini returns. A config object belongs to the plugin from
 *   config_new until config_destroy.
 *
 * Threads
 *   entry, init and fini are called once, from one thread. config_new and
 *   config_destroy are never called concurrently with any other hook.
 *   score_batch may be called from different threads over time, and
 *   concurrently for different config objects, but never concurrently for
 *   the same config object. A plugin must not keep threads running after
 *   fini returns.
 *
 * Isolation
 *   rlpost runs plugins in a separate host process with a deadline per
 *   batch. A plugin that crashes, hangs past the deadline, returns a non-
 *   finite score or a number of scores other than batch->count fails that
 *   batch's samples (with the reason recorded), and the process is started
 *   again for the next batch. Scores must be finite; their scale is the
 *   plugin's choice (the run config weights them).
 */
#ifndef RLPOST_REWARD_PLUGIN_H_
#define RLPOST_REWARD_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RLPOST_REWARD_ABI_MAJOR 1
#define RLPOST_REWARD_ABI_MINOR 0
#define RLPOST_REWARD_ENTRY_NAME "rlpost_reward_plugin_entry"

#if defined(_WIN32)
#define RLPOST_REWARD_EXPORT __declspec(dllexport)
#else
#define RLPOST_REWARD_EXPORT __attribute__((visibility("default")))
#endif

/* Return codes of every hook. */
typedef enum rlpost_reward_status {
  RLPOST_REWARD_OK = 0,
  RLPOST_REWARD_INVALID_ARGUMENT = 1, /* bad config bytes, unknown function name */
  RLPOST_REWARD_UNSUPPORTED = 2,      /* e.g. the host's ABI minor version is too old */
  RLPOST_REWARD_INTERNAL = 3          /* anything else */
} rlpost_reward_status;

/* A message buffer owned by the host. */
typedef struct rlpost_reward_error {
  char* message;   /* write at most `capacity` bytes, NUL included */
  size_t capacity;
} rlpost_reward_error;

/* Log levels of rlpost_reward_host.log. */
#define RLPOST_REWARD_LOG_INFO 0
#define RLPOST_REWARD_LOG_WARNING 1
#define RLPOST_REWARD_LOG_ERROR 2

/* The host's table, filled by the host before the entry call. */
typedef struct rlpost_reward_host {
  uint32_t struct_size; /* sizeof(rlpost_reward_host) as the host was built */
  uint16_t abi_major;
  uint16_t abi_minor;
  const char* host_version; /* rlpost's version, e.g. "0.1.0" */
  /* Writes one line to the host's log; callable from any hook and thread. */
  void (*log)(void* host_context, int level, const char* message);
  void* host_context; /* pass back to log */
} rlpost_reward_host;

/* One completion to score. Fields added in later minor versions go at the
 * end; read only those below sample_size (see rlpost_reward_batch). */
typedef struct rlpost_reward_sample {
  const char* prompt;
  size_t prompt_size;
  const char* response;
  size_t response_size;
  const char* reference; /* the dataset's reference answer, may be empty */
  size_t reference_size;
  const char* prompt_id;
  size_t prompt_id_size;
  const int32_t* response_token_ids;
  size_t response_token_count;
  uint32_t max_response_tokens; /* the generation budget */
  uint32_t group;               /* samples of one prompt share a group index */
  uint32_t index_in_group;
  int32_t correct;              /* 1 when the verifier judged the answer correct */
  double verifier_score;        /* the verifier's score in [0, 1] */
  const char* verdict;          /* e.g. "correct", "wrong", "timeout", "error" */
  size_t verdict_size;
  const char* finish_reason;    /* "stop", "length" */
  size_t finish_reason_size;
} rlpost_reward_sample;

typedef struct rlpost_reward_batch {
  size_t sample_size; /* sizeof(rlpost_reward_sample) as the host was built */
  size_t count;
  const rlpost_reward_sample* samples; /* stride sample_size */
} rlpost_reward_batch;

/* The plugin's table, zeroed by the host and filled by the entry function. */
typedef struct rlpost_reward_plugin {
  uint32_t struct_size; /* set by the host: bytes the plugin may write */
  uint16_t abi_major;   /* set by the plugin: RLPOST_REWARD_ABI_MAJOR */
  uint16_t abi_minor;   /* set by the plugin: RLPOST_REWARD_ABI_MINOR */
  const char* name;     /* the plugin's name, e.g. "example" */
  const char* version;  /* the plugin's own version, recorded per run */
  /* NULL-terminated list of the reward functions config_new accepts. */
  const char* const* functions;

  /* Once, before any other hook. May be NULL. */
  rlpost_reward_status (*init)(const rlpost_reward_host* host, rlpost_reward_error* error);
  /* Creates the configured reward function `function` (one of `functions`)
   * from `config` (config_size bytes, NUL-terminated, may be empty). */
  rlpost_reward_status (*config_new)(const char* function, const char* config,
                                     size_t config_size, void** config_out,
                                     rlpost_reward_error* error);
  /* Writes one finite score per sample into scores[0 .. capacity) and sets
   * *written to the number written (batch->count when it succeeds; capacity
   * equals batch->count). */
  rlpost_reward_status (*score_batch)(void* config, const rlpost_reward_batch* batch,
                                      double* scores, size_t capacity, size_t* written,
                                      rlpost_reward_error* error);
  void (*config_destroy)(void* config);
  /* Once, last. May be NULL. */
  void (*fini)(void);
} rlpost_reward_plugin;

/* The one exported symbol. */
typedef rlpost_reward_status (*rlpost_reward_entry_fn)(const rlpost_reward_host* host,
                                                       rlpost_reward_plugin* plugin);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* RLPOST_REWARD_PLUGIN_H_ */
