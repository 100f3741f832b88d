"""A tiny Hugging Face BERT folder for tests that need a model folder on disk (not MiniLM's weights)."""
import json
import shutil
from pathlib import Path


def tiny_bert_folder(folder: Path, minilm_dir: Path, *, max_position: int = 256) -> Path:
    """A 2-layer, 32-wide BERT folder at `folder` (random weights, seed 0; MiniLM's tokenizer files)."""
    import jax

    from jaxir.models.bert import BertConfig, init_params
    from jaxir.models.hf import export_bert_weights, hf_config_dict, write_weights

    cfg = BertConfig.tiny(max_position=max_position)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(hf_config_dict(cfg, ["BertModel"]), indent=1))
    write_weights(folder / "model.safetensors",
                  export_bert_weights(init_params(cfg, jax.random.PRNGKey(0)), cfg.num_layers))
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, folder / name)
    return folder
