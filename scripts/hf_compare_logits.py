#!/usr/bin/env python3
"""Compares rlpost's logits with Hugging Face transformers' on tiny random
checkpoints written by rlpost (needs torch + transformers; meant for a GPU
machine or any machine where they can be installed).

    scripts/hf_compare_logits.py build/bin/rlpost-model [--device cuda]

For each family it writes a tiny config.json, has `rlpost-model init` write a
random checkpoint, loads it with transformers.AutoModelForCausalLM (fp32,
eager attention), runs the same token ids through both, and prints the
relative error max|a-b| / max|b|. Exit status 1 if any exceeds 1e-4.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

FAMILIES = {
    "qwen3_moe": {"head_dim": 16, "moe_intermediate_size": 32, "intermediate_size": 64,
                  "num_experts": 4, "norm_topk_prob": True, "decoder_sparse_step": 1,
                  "mlp_only_layers": [1]},
    "mixtral": {"intermediate_size": 32, "num_local_experts": 4},
    "qwen2_moe": {"moe_intermediate_size": 32, "intermediate_size": 64, "num_experts": 4,
                  "shared_expert_intermediate_size": 48},
    "olmoe": {"intermediate_size": 32, "num_experts": 4},
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rlpost_model")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    ids = [3, 17, 92, 5, 44, 8, 120, 64, 1, 33, 77, 2]
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for family, extra in FAMILIES.items():
            config = {"model_type": family, "vocab_size": 128, "hidden_size": 64,
                      "num_hidden_layers": 2, "num_attention_heads": 4,
                      "num_key_value_heads": 2, "num_experts_per_tok": 2,
                      "max_position_embeddings": 256, "rope_theta": 10000.0,
                      "rlpost_init_seed": 11}
            config.update(extra)
            cfg_path = os.path.join(tmp, family + ".json")
            with open(cfg_path, "w") as f:
                json.dump(config, f)
            ckpt = os.path.join(tmp, family)
            subprocess.run([args.rlpost_model, "init", cfg_path, ckpt], check=True,
                           stdout=subprocess.DEVNULL)
            ours = json.loads(subprocess.run([args.rlpost_model, "logits", ckpt] +
                                             [str(i) for i in ids], check=True,
                                             capture_output=True, text=True).stdout)
            model = AutoModelForCausalLM.from_pretrained(
                ckpt, torch_dtype=torch.float32, attn_implementation="eager").to(args.device)
            model.eval()
            with torch.no_grad():
                theirs = model(torch.tensor([ids], device=args.device)).logits[0].cpu()
            ours_t = torch.tensor(ours)
            rel = ((ours_t - theirs).abs().max() / theirs.abs().max()).item()
            worst = max(worst, rel)
            print(f"{family:10s} relative error {rel:.3e}")
    print(f"worst {worst:.3e} (target < 1e-4)")
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
