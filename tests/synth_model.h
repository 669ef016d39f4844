/* Test helper: writes a random V4 checkpoint folder for any config (every
 * tensor of the config's inventory, deterministic values scaled to keep
 * activations finite), for tests that need shapes the oracle fixtures lack:
 * long sequences, wide heads, many compressed entries. No oracle: such tests
 * compare the model with itself under different schedules. */
#ifndef LT_SYNTH_MODEL_H
#define LT_SYNTH_MODEL_H

/* Writes dir/config.json (config_json) and dir/model.safetensors; dir must
 * exist. Returns 0 on success. */
int test_synth_model(const char *dir, const char *config_json, unsigned seed);

#endif
