"""Export a GPT-2 reward model (Hugging Face GPT2ForSequenceClassification) to ONNX.

This is for the benchmark's optional peers, onnxruntime-node and onnxruntime-web: they
need an ONNX file of the same weights our own code scores. Export the model folder
(config.json + model.safetensors) once, then give the file to the benchmark:

    pip install torch transformers safetensors
    python bench/export_onnx.py MODEL_DIR gpt2-base.onnx
    node dist/bench/run.js --onnx gpt2-base.onnx

The graph takes `input_ids` and `attention_mask` (int64, [batch, sequence], both axes
dynamic) and returns `logits` ([batch, num_labels]), pooled at the last non-padding
token exactly as transformers does. The `onnx` package is not needed; if it is
installed, the written file is checked with it.
"""

import argparse
import inspect
import os

import torch
from transformers import GPT2ForSequenceClassification


class LogitsOnly(torch.nn.Module):
    """Wraps the model so the exported graph has exactly one output, `logits`."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, return_dict=False)
        return out[0]


def load_model(model_dir):
    try:  # eager attention exports the same graph on every torch / transformers version
        model = GPT2ForSequenceClassification.from_pretrained(model_dir, torch_dtype=torch.float32, attn_implementation="eager")
    except (TypeError, ValueError):  # transformers older than 4.36 has no attn_implementation
        model = GPT2ForSequenceClassification.from_pretrained(model_dir, torch_dtype=torch.float32)
    model.config.use_cache = False
    return model.eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", help="folder with config.json and model.safetensors")
    parser.add_argument("output", help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=14, help="ONNX opset (default 14)")
    args = parser.parse_args()

    model = LogitsOnly(load_model(args.model_dir)).eval()
    pad = model.model.config.pad_token_id
    if pad is None:
        print("warning: the config has no pad_token_id; transformers then refuses batches of more than one text")

    # Batch 2 and length 8, so that neither axis is traced as a constant 1; no padding token.
    input_ids = torch.tensor([[464, 2068, 7586, 21831, 18045, 625, 262, 16931], [40, 588, 340, 13, 632, 318, 922, 13]], dtype=torch.int64)
    attention_mask = torch.ones_like(input_ids)

    kwargs = dict(
        input_names=["input_ids", "attention_mask"],
        output_names=["logits"],
        dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}},
        opset_version=args.opset,
        do_constant_folding=True,
        export_params=True,
    )
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter: one self-contained file, no onnxscript needed

    with torch.no_grad():
        expected = model(input_ids, attention_mask)
        torch.onnx.export(model, (input_ids, attention_mask), args.output, **kwargs)

    size = os.path.getsize(args.output)
    print(f"wrote {args.output} ({size / 1e6:.1f} MB, opset {args.opset}, torch {torch.__version__})")
    print("logits of the tracing batch:", expected.flatten().tolist())

    try:
        import onnx
    except ImportError:
        return
    onnx.checker.check_model(args.output)
    print("onnx.checker: ok")


if __name__ == "__main__":
    main()
