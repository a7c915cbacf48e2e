"""A tiny tokenizer and model, built here from the export's own text: nothing is downloaded.

The tokenizer is a ``tokenizers`` WordLevel model of whitespace-separated words (few tokens per
row, so a training step on a 10k-token agent row stays cheap on CPU) trained on the exported
files' strings, with ChatML special tokens and a chat template that renders tool schemas,
assistant tool calls and tool results (Qwen2.5's layout). The model is a Llama of one layer with
random weights: enough for the training tools to tokenize, batch, run a step and compute a loss.

Runs inside a consumer environment (consumers/*/requirements.txt), never in the app's.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
VOCAB_SIZE = 4096
TRAINING_ROWS = 50

CHAT_TEMPLATE = """
{%- set system = messages[0].content if messages and messages[0].role == 'system' else '' -%}
{%- if tools -%}
<|im_start|>system
{% if system %}{{ system }}

{% endif %}# Tools

You may call one or more functions. Function signatures:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools><|im_end|>
{% elif system -%}
<|im_start|>system
{{ system }}<|im_end|>
{% endif -%}
{%- for message in messages -%}
{%- if message.role == 'system' -%}
{%- elif message.role == 'assistant' -%}
<|im_start|>assistant
{% generation %}{{ message.content or '' }}
{%- for call in message.tool_calls or [] %}
{%- set args = call.function.arguments %}
<tool_call>
{"name": "{{ call.function.name }}", "arguments": {{ args if args is string else args | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>{% endgeneration %}
{% elif message.role == 'tool' -%}
<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else -%}
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
<|im_start|>assistant
{% endif -%}
"""


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value (keys included: templates render tool schemas)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def export_texts(folders: list[Path]) -> Iterator[str]:
    """The strings of the first TRAINING_ROWS rows of each file: enough for a 4096-word vocabulary
    (words it lacks become <unk>), and the tokenizer trains in a moment."""
    for folder in folders:
        for path in sorted(folder.glob("*.jsonl")):
            with path.open(encoding="utf-8") as lines:
                for line in itertools.islice((x for x in lines if x.strip()), TRAINING_ROWS):
                    yield from strings(json.loads(line))
    yield CHAT_TEMPLATE


def build_tokenizer(folders: list[Path], out: Path) -> Any:
    """A WordLevel tokenizer trained on the exports, saved in ``out`` for from_pretrained."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS)
    core.train_from_iterator(export_texts(folders), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    return tokenizer


def build_model(tokenizer: Any, out: Path) -> Any:
    """A one-layer Llama with random weights, saved in ``out`` beside the tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=65536,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    return model


def build(folders: list[Path], out: Path) -> tuple[Any, Any]:
    """(model, tokenizer), both saved in ``out``."""
    tokenizer = build_tokenizer(folders, out)
    return build_model(tokenizer, out), tokenizer
