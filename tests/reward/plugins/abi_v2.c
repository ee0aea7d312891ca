/* Claims ABI major version 2: the host must refuse it before calling init,
 * which would abort. */
#include <stdlib.h>

#include "rlpost/reward_plugin.h"

static rlpost_reward_status never_init(const rlpost_reward_host* host, rlpost_reward_error* error) {
  (void)host;
  (void)error;
  abort();
}

RLPOST_REWARD_EXPORT rlpost_reward_status rlpost_reward_plugin_entry(const rlpost_reward_host* host,
                                                                     rlpost_reward_plugin* plugin) {
  (void)host;
  plugin->abi_major = RLPOST_REWARD_ABI_MAJOR + 1;
  plugin->abi_minor = 0;
  plugin->name = "from_the_future";
  plugin->init = never_init;
  return RLPOST_REWARD_OK;
}
