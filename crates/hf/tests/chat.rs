//! Chat templates render the recorded strings of each family, from `tokenizer_config.json` or from
//! `chat_template.jinja`; the assistant-only mask covers the answers and their end-of-turn tokens,
//! and chat JSONL refuses a malformed line naming it.

mod common;

use std::path::Path;

use candle_core::Device;
use common::{checkpoint, FAMILIES};
use emsl_hf::jsonl::parse_record;
use emsl_hf::{encode_chat, load, read_chat_jsonl, training_batch, Family, Message};

fn conversation() -> Vec<Message> {
    vec![
        Message::new("system", "Be brief."),
        Message::new("user", "Hi"),
        Message::new("assistant", "Hello!"),
    ]
}

fn template(family: Family) -> emsl_hf::ChatTemplate {
    let dir = checkpoint(family);
    load(dir.path(), &Device::Cpu).unwrap().template
}

#[test]
fn qwen2_template_renders_the_recorded_string() {
    let t = template(Family::Qwen2);
    assert_eq!(
        t.render(&conversation(), false).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n"
    );
    // Without a system message the template writes Qwen's own.
    assert_eq!(
        t.render(&[Message::new("user", "Hi")], true).unwrap(),
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful \
         assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn llama3_template_renders_the_recorded_string() {
    let t = template(Family::Llama);
    let mut conv = conversation();
    conv[2].content = "  Hello!  ".into(); // the template trims every content
    assert_eq!(
        t.render(&conv, false).unwrap(),
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>\
         <|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
    );
    assert_eq!(
        t.render(&[Message::new("user", "Hi")], true).unwrap(),
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn the_loss_mask_covers_the_assistant_tokens_only() {
    for family in FAMILIES {
        let dir = checkpoint(family);
        let loaded = load(dir.path(), &Device::Cpu).unwrap();
        let conv = vec![
            Message::new("user", "Hi"),
            Message::new("assistant", "Hello!"),
            Message::new("user", "2+2?"),
            Message::new("assistant", "4"),
        ];
        let ex = encode_chat(&loaded.tokenizer, &loaded.template, &conv).unwrap();
        assert_eq!(ex.ids.len(), ex.assistant.len());
        let all = loaded.tokenizer.decode(&ex.ids, false).unwrap();
        assert_eq!(all, loaded.template.render(&conv, false).unwrap());
        let picked: Vec<u32> = ex
            .ids
            .iter()
            .zip(&ex.assistant)
            .filter(|(_, a)| **a)
            .map(|(i, _)| *i)
            .collect();
        let text = loaded.tokenizer.decode(&picked, false).unwrap();
        let expected = match family {
            Family::Qwen2 => "Hello!<|im_end|>\n4<|im_end|>\n",
            Family::Llama => "Hello!<|eot_id|>4<|eot_id|>",
        };
        assert_eq!(text, expected, "{family:?}");

        // The batch trains on the targets that are assistant tokens, never on padding.
        let short = encode_chat(&loaded.tokenizer, &loaded.template, &conv[..2]).unwrap();
        let (x, y, mask) = training_batch(&[ex.clone(), short.clone()], 0, &Device::Cpu).unwrap();
        assert_eq!(x.dims(), &[2, ex.ids.len() - 1]);
        assert_eq!(y.dims(), x.dims());
        let mask = mask.to_vec2::<f32>().unwrap();
        let n_assistant =
            |e: &emsl_hf::ChatExample| e.assistant[1..].iter().filter(|a| **a).count();
        assert_eq!(mask[0].iter().sum::<f32>() as usize, n_assistant(&ex));
        assert_eq!(mask[1].iter().sum::<f32>() as usize, n_assistant(&short));
        assert!(mask[1][short.ids.len() - 1..].iter().all(|m| *m == 0.0));
    }
}

#[test]
fn a_malformed_jsonl_line_is_refused_naming_the_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.jsonl");
    let good = r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "id": 1}"#;
    let bad =
        r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": 5}]}"#;
    std::fs::write(&path, format!("{good}\n\n{bad}\n")).unwrap();
    let err = format!("{:#}", read_chat_jsonl(&path).unwrap_err());
    assert!(err.contains("bad.jsonl:3"), "{err}");
    assert!(err.contains("messages[1].content"), "{err}");
    assert!(err.contains("expected a string, found a number"), "{err}");

    std::fs::write(&path, format!("{good}\n{good}\n")).unwrap();
    let ds = read_chat_jsonl(&path).unwrap();
    assert_eq!(ds.records.len(), 2);
    assert_eq!(ds.records[0][1], Message::new("assistant", "Hello!"));
    assert_eq!(ds.sha256, emsl_io::sha256_file(&path).unwrap());

    for (line, field) in [
        ("[1, 2]", "expected an object"),
        ("{\"msgs\": []}", "'messages' is missing"),
        ("{\"messages\": []}", "'messages' is empty"),
        (
            "{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}",
            "messages[0].role",
        ),
        (
            "{\"messages\": [{\"content\": \"x\"}]}",
            "messages[0].role' is missing",
        ),
        (
            "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
            "no assistant message",
        ),
        ("{\"messages\": [{\"role\": \"user\"", "not valid JSON"),
    ] {
        let err = format!("{:#}", parse_record(line).unwrap_err());
        assert!(err.contains(field), "{line}: {err}");
    }
}

/// The folder as transformers 5 saves it (checked with transformers 5.25): the template alone in
/// `chat_template.jinja`, byte for byte, and no `chat_template` in `tokenizer_config.json`.
fn save_template_as_transformers_5(dir: &Path) {
    let path = dir.join("tokenizer_config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let template = cfg
        .as_object_mut()
        .unwrap()
        .remove("chat_template")
        .unwrap();
    std::fs::write(&path, cfg.to_string()).unwrap();
    std::fs::write(dir.join("chat_template.jinja"), template.as_str().unwrap()).unwrap();
}

fn load_error(dir: &Path) -> String {
    format!("{:#}", load(dir, &Device::Cpu).err().unwrap())
}

#[test]
fn a_transformers_5_folder_renders_from_chat_template_jinja() {
    for family in FAMILIES {
        let dir = checkpoint(family);
        let from_config = template(family).render(&conversation(), false).unwrap();
        save_template_as_transformers_5(dir.path());
        let loaded = load(dir.path(), &Device::Cpu).unwrap().template;
        assert_eq!(loaded.render(&conversation(), false).unwrap(), from_config);
        // The special tokens still come from tokenizer_config.json.
        let eos = if family == Family::Qwen2 {
            "<|im_end|>"
        } else {
            "<|eot_id|>"
        };
        assert_eq!(loaded.eos_token.as_deref(), Some(eos));
    }
}

#[test]
fn two_different_templates_are_refused_naming_both_files() {
    let dir = checkpoint(Family::Qwen2);
    let jinja = dir.path().join("chat_template.jinja");
    std::fs::write(&jinja, common::LLAMA_TEMPLATE).unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains(&jinja.display().to_string())
            && err.contains("tokenizer_config.json")
            && err.contains("different templates"),
        "{err}"
    );
    // The same template in both places is one template.
    std::fs::write(&jinja, common::QWEN_TEMPLATE).unwrap();
    assert!(load(dir.path(), &Device::Cpu).is_ok());
}

#[test]
fn a_folder_without_a_template_is_refused_naming_both_places() {
    let dir = checkpoint(Family::Llama);
    save_template_as_transformers_5(dir.path());
    std::fs::remove_file(dir.path().join("chat_template.jinja")).unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("no chat template")
            && err.contains("chat_template.jinja")
            && err.contains("tokenizer_config.json's chat_template")
            && err.contains(&dir.path().display().to_string()),
        "{err}"
    );
    // A template that does not parse is refused naming its file.
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{% for m in messages %}",
    )
    .unwrap();
    let err = load_error(dir.path());
    assert!(
        err.contains("chat_template.jinja: the chat template"),
        "{err}"
    );
}
