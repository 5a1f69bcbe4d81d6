"""generation/onnx_decoder.py on a tiny random Llama: the exported step reads as the model
does (padded batches, a growing cache, one prompt repeated), its 8-bit copy stays close, and
a Generator over a saved decoder speaks a chat model's prompt (sampler.chat_prompt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from generation import Generator, SamplingConfig, write_manifest
from generation.errors import ModelLoadError
from generation.onnx_decoder import (DECODER_FILE, OnnxCausalLM, can_export, decoder_shape,
                                     export_decoder, load_decoder, quantize_decoder,
                                     save_decoder)
from generation.pairs import save_pairs
from generation.sampler import chat_prompt, left_padded, sample_prompts, sentence_end_ids
from generation.tokenizer import turn_end_ids

TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}assistant:{% endif %}")
PAIRS = [("do you like tea?", "I do, a pot of tea in the afternoon is lovely."),
         ("i love the rain", "Rain on the window is very soothing."),
         ("how are you today?", "Very well, thank you for asking!")]


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> tuple[Any, Any]:
    """A random 2-layer Llama (grouped keys and values) over the tiny GPT-2's tokenizer, with
    a chat template."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_dir))
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=128, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id)
    return LlamaForCausalLM(config).eval(), tokenizer


@pytest.fixture(scope="module")
def graph(tiny: tuple[Any, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("decoder") / "float.onnx"
    path.write_bytes(export_decoder(tiny[0]))
    return path


def test_the_step_reads_a_padded_batch_and_its_cache_as_the_model_does(tiny: tuple,
                                                                        graph: Path) -> None:
    lm, _ = tiny
    onnx = OnnxCausalLM(graph, decoder_shape(lm))
    ids, mask, positions = left_padded([[5, 6, 7, 8, 9], [11, 12]], 0, "cpu")
    with torch.no_grad():
        ref = lm(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        out = onnx(input_ids=ids, attention_mask=mask, position_ids=positions)
        assert out.logits.shape == ref.logits.shape
        assert torch.allclose(out.logits[0], ref.logits[0], atol=1e-4)
        assert torch.allclose(out.logits[1, -2:], ref.logits[1, -2:], atol=1e-4)  # real tokens
        step = torch.tensor([[20], [21]])
        mask = torch.cat([mask, torch.ones((2, 1), dtype=torch.long)], dim=1)
        positions = positions[:, -1:] + 1
        ref = lm(input_ids=step, attention_mask=mask, position_ids=positions,
                 past_key_values=ref.past_key_values, use_cache=True)
        out = onnx(input_ids=step, attention_mask=mask, position_ids=positions,
                   past_key_values=out.past_key_values, logits_to_keep=1)
    assert out.logits.shape == (2, 1, len(tiny[1]))
    assert torch.allclose(out.logits[:, -1], ref.logits[:, -1], atol=1e-4)
    assert out.past_key_values[0].shape == (2, 2, 6, 16)  # (N, kv heads, P + T, head dim)


def test_one_prompt_repeated_is_read_once_and_copied(tiny: tuple, graph: Path) -> None:
    lm, _ = tiny
    onnx = OnnxCausalLM(graph, decoder_shape(lm))
    ids = torch.tensor([[5, 6, 7]] * 3)
    out = onnx(input_ids=ids, logits_to_keep=1)
    with torch.no_grad():
        ref = lm(input_ids=ids[:1]).logits[:, -1]
    assert out.logits.shape == (3, 1, len(tiny[1]))
    assert all(torch.allclose(row, ref[0], atol=1e-4) for row in out.logits[:, -1])
    assert out.past_key_values[0].shape[0] == 3


def test_greedy_sampling_through_the_graph_takes_the_models_tokens(tiny: tuple,
                                                                  graph: Path) -> None:
    lm, tokenizer = tiny
    onnx = OnnxCausalLM(graph, decoder_shape(lm))
    greedy = SamplingConfig(temperature=0, max_new_tokens=6)
    prompts = [[5, 6, 7, 8], [9, 10]]
    stops = turn_end_ids(tokenizer)
    ours = sample_prompts(onnx, tokenizer, prompts, greedy, stops)
    theirs = sample_prompts(lm, tokenizer, prompts, greedy, stops)
    assert [s.token_ids for s in ours] == [s.token_ids for s in theirs]
    assert [s.logprob for s in ours] == pytest.approx([s.logprob for s in theirs], abs=1e-4)


def test_the_8_bit_graph_stays_close_to_the_float_one(tiny: tuple, graph: Path,
                                                      tmp_path: Path) -> None:
    lm, _ = tiny
    small = tmp_path / "int8.onnx"
    small.write_bytes(quantize_decoder(graph.read_bytes()))
    assert small.stat().st_size < graph.stat().st_size
    ids = torch.tensor([list(range(5, 25))])
    exact = OnnxCausalLM(graph, decoder_shape(lm))(input_ids=ids).logits[0]
    near = OnnxCausalLM(small, decoder_shape(lm))(input_ids=ids).logits[0]
    assert (exact.argmax(-1) == near.argmax(-1)).float().mean() >= 0.9
    assert (exact - near).abs().max() < 0.1


def test_other_layouts_are_refused(tiny_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    gpt2 = AutoModelForCausalLM.from_pretrained(str(tiny_dir))
    assert not can_export(gpt2)
    with pytest.raises(ModelLoadError, match="llama"):
        export_decoder(gpt2)


def test_a_missing_or_broken_graph_is_a_clear_error(tiny: tuple, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="xingkong train generation --force"):
        load_decoder(tmp_path, {"file": DECODER_FILE, "shape": {"layers": 1}})
    decoder = save_decoder(tiny[0], tiny[1], tmp_path)
    (tmp_path / DECODER_FILE).write_bytes(b"not a graph")
    with pytest.raises(ModelLoadError, match="Cannot load the decoder graph"):
        load_decoder(tmp_path, decoder)


def test_a_chat_prompt_holds_the_system_line_the_shots_and_the_history(tiny: tuple) -> None:
    _, tokenizer = tiny
    ids = chat_prompt(tokenizer, "is it sunny?", ["hello", "hi, how can I help?"], 500,
                      system="You are a concierge.", shots=PAIRS[:2])
    text = tokenizer.decode(ids)
    assert text.startswith("system: You are a concierge.\nuser: do you like tea?\nassistant:")
    assert text.endswith("user: hello\nassistant: hi, how can I help?\nuser: is it sunny?\n"
                         "assistant:")
    full = len(ids)
    cut = chat_prompt(tokenizer, "is it sunny?", ["hello", "hi, how can I help?"], full - 1,
                      system="You are a concierge.", shots=PAIRS[:2])
    assert "tea" not in tokenizer.decode(cut) and "rain" in tokenizer.decode(cut)  # far first


def test_sentence_ends_stop_a_one_sentence_reply(tiny: tuple) -> None:
    _, tokenizer = tiny
    ends = set(sentence_end_ids(tokenizer))
    assert {tokenizer.convert_tokens_to_ids(t) for t in (".", "!", "?")} <= ends
    assert tokenizer.convert_tokens_to_ids("a") not in ends


def test_a_generator_over_a_saved_decoder_answers_in_the_chat_template(
        tiny: tuple, tmp_path: Path) -> None:
    lm, tokenizer = tiny
    decoder = save_decoder(lm, tokenizer, tmp_path)
    assert decoder["chat"] and decoder["shape"]["parameters"] > 0
    sampling = SamplingConfig(n_candidates=3, max_new_tokens=8, min_relevance=-1.0, min_words=1,
                              concierge_filter=False, mmi_weight=0.0, shots=2, one_sentence=True,
                              system_prompt="You are a concierge.", pair_min_score=9.0, seed=0)
    write_manifest(tmp_path, model=".", sampling=sampling, decoder=decoder)
    save_pairs(PAIRS, tmp_path)
    generator = Generator(tmp_path).load()
    assert isinstance(generator._lm, OnnxCausalLM) and generator._chat
    prior = tokenizer.decode(generator._prior_ids)  # MMI's p(reply): no message before it
    assert prior.startswith("system: You are a concierge.") and prior.endswith("assistant:")
    assert [m for m, _ in generator.shots("do you like coffee?")][-1] == "do you like tea?"
    first = generator.reply("do you like coffee?")
    again = generator.reply("do you like coffee?")
    assert [c.text for c in first.candidates] == [c.text for c in again.candidates]
    assert len(first.candidates) == 3
    assert all(c.mmi == 0.0 for c in first.candidates if c.kept)  # no MMI pass at weight 0
    assert first.metadata()["generation"]["model"] == "an exported model"  # no report
    assert all(c.likelihood > float("-inf") for c in first.candidates if c.kept)
    job = generator.reply("write me a poem about the ocean")  # no small talk: nothing sampled
    assert job.text is None and job.candidates == ()
    assert generator.known_share("wie funktioniert ein Verbrennungsmotor") < 0.6
    assert generator.known_share("i love the rain in autumn") == 1.0
    mashed = generator.reply("blorf snizzle wump")  # another language or none: the same
    assert mashed.text is None and mashed.candidates == ()
