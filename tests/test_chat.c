/* Chat encoding tests: the four official V4 golden pairs byte for byte, the
 * V4.1 fixtures (tests/data/chat/README.md), the documented V4 examples
 * (tokenizer-and-chat.md section 6), the V4.1 rules (spec 7.3), errors,
 * and format detection from a model folder. */
#include "chat.h"
#include "test.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define GOLDEN "../shared/assets/deepseek-v4/v4-flash/encoding/tests/"

static char *encode(const char *messages_json, const lt_chat_options *o, lt_status want, const char *err_needle) {
    json_error_t je;
    json_t *m = json_loads(messages_json, 0, &je);
    CHECKF(m, "test JSON: %s", je.text);
    char *p = NULL;
    size_t len;
    lt_error err = {{0}};
    lt_status st = lt_chat_encode(m, NULL, o, &p, &len, &err);
    CHECKF(st == want, "status %d (%s), want %d", st, err.msg, want);
    if (err_needle) CHECKF(strstr(err.msg, err_needle), "error '%s' lacks '%s'", err.msg, err_needle);
    json_decref(m);
    return p;
}

static void expect(const char *messages_json, const lt_chat_options *o, const char *want) {
    char *p = encode(messages_json, o, LT_OK, NULL);
    CHECKF(p && !strcmp(p, want), "got  %s\nwant %s", p ? p : "(null)", want);
    free(p);
}

static void golden(const char *input, const char *output, lt_chat_format fmt, int thinking) {
    char *want;
    size_t want_len, len;
    json_error_t je;
    lt_error err;
    json_t *in = json_load_file(input, 0, &je);
    CHECKF(in, "%s: %s", input, je.text);
    if (!in || lt_read_file(output, &want, &want_len, NULL) != LT_OK) return;
    json_t *msgs = json_is_array(in) ? in : json_object_get(in, "messages");
    lt_chat_options o = {.format = fmt, .thinking = thinking};
    char *p = NULL;
    CHECKF(lt_chat_encode(msgs, json_object_get(in, "tools"), &o, &p, &len, &err) == LT_OK, "%s", err.msg);
    size_t at = 0;
    while (p && at < len && at < want_len && p[at] == want[at]) at++;
    CHECKF(p && len == want_len && at == len, "%s: first difference at byte %zu of %zu: got '%.40s' want '%.40s'",
           output, at, want_len, p ? p + at : "", want + at);
    free(p);
    free(want);
    json_decref(in);
}

LT_TEST(chat, v4_golden_1_tools_round_trip) { golden(GOLDEN "test_input_1.json", GOLDEN "test_output_1.txt", LT_CHAT_V4, 1); }
LT_TEST(chat, v4_golden_2_drop_thinking) { golden(GOLDEN "test_input_2.json", GOLDEN "test_output_2.txt", LT_CHAT_V4, 1); }
LT_TEST(chat, v4_golden_3_developer_reminder) { golden(GOLDEN "test_input_3.json", GOLDEN "test_output_3.txt", LT_CHAT_V4, 1); }
LT_TEST(chat, v4_golden_4_chat_action_task) { golden(GOLDEN "test_input_4.json", GOLDEN "test_output_4.txt", LT_CHAT_V4, 0); }
LT_TEST(chat, v41_fixture_1_tools) { golden(GOLDEN "test_input_1.json", "tests/data/chat/v41_output_1.txt", LT_CHAT_V41, 1); }
LT_TEST(chat, v41_fixture_2_drop_thinking) { golden(GOLDEN "test_input_2.json", "tests/data/chat/v41_output_2.txt", LT_CHAT_V41, 1); }

#define B "<｜begin▁of▁sentence｜>"
#define E "<｜end▁of▁sentence｜>"
#define SYS_Q "[{\"role\":\"system\",\"content\":\"You are a helpful assistant.\"},{\"role\":\"user\",\"content\":\"What is 2+2?\"}"

LT_TEST(chat, v4_documented_examples) {
    lt_chat_options think = {.thinking = 1}, chat = {0}, keep = {.thinking = 1, .keep_reasoning = 1};
    expect(SYS_Q "]", &think, B "You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜><think>");
    expect(SYS_Q "]", &chat, B "You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜></think>");
    expect("[{\"role\":\"user\",\"content\":\"Hi\"}]", &chat, B "<｜User｜>Hi<｜Assistant｜></think>");
    const char *two = SYS_Q ",{\"role\":\"assistant\",\"reasoning_content\":\"2+2=4.\",\"content\":\"4\"},"
                      "{\"role\":\"user\",\"content\":\"And 3+3?\"}]";
    expect(two, &think, B "You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜></think>4" E
                          "<｜User｜>And 3+3?<｜Assistant｜><think>");
    expect(two, &keep, B "You are a helpful assistant.<｜User｜>What is 2+2?<｜Assistant｜><think>2+2=4.</think>4" E
                         "<｜User｜>And 3+3?<｜Assistant｜><think>");
    expect("[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"latest_reminder\",\"content\":\"2026-07-31,Friday,Paris,"
           "App,English\"},{\"role\":\"user\",\"content\":\"Q\"}]", &chat,
           B "S<｜latest_reminder｜>2026-07-31,Friday,Paris,App,English<｜User｜>Q<｜Assistant｜></think>");
    expect("[{\"role\":\"user\",\"content\":\"Q\",\"task\":\"query\"}]", &chat, B "<｜User｜>Q<｜query｜>");
    expect("[{\"role\":\"user\",\"content\":\"Q\"},{\"role\":\"assistant\",\"content\":\"A\",\"task\":\"title\"}]", &chat,
           B "<｜User｜>Q<｜Assistant｜></think>A" E "<｜title｜>");
}

LT_TEST(chat, v4_tool_call_tail_and_result_order) {
    lt_chat_options think = {.thinking = 1};
    const char *m =
        "[{\"role\":\"system\",\"content\":\"\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]},"
        "{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"reasoning_content\":\"R\",\"tool_calls\":["
        "{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\\\": 3, \\\"s\\\": \\\"hi\\\"}\"}},"
        "{\"id\":\"b\",\"function\":{\"name\":\"f\",\"arguments\":{\"y\":[1.5,1e-05,true,null]}}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"b\",\"content\":\"B\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"a\",\"content\":\"A\"}]";
    char *p = encode(m, &think, LT_OK, NULL);
    const char *tail =
        "<｜User｜>q<｜Assistant｜><think>R</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n"
        "<｜DSML｜parameter name=\"x\" string=\"false\">3</｜DSML｜parameter>\n"
        "<｜DSML｜parameter name=\"s\" string=\"true\">hi</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
        "<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"y\" string=\"false\">[1.5, 1e-05, true, null]"
        "</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>" E
        "<｜User｜><tool_result>A</tool_result>\n\n<tool_result>B</tool_result><｜Assistant｜><think>";
    CHECKF(p && strstr(p, tail) && !strcmp(p + strlen(p) - strlen(tail), tail), "got %s", p ? p : "");
    free(p);
}

LT_TEST(chat, v4_reasoning_effort_max) {
    lt_chat_options max = {.thinking = 1, .reasoning_effort = "max"}, chat_max = {.reasoning_effort = "max"};
    char *p = encode("[{\"role\":\"user\",\"content\":\"q\"}]", &max, LT_OK, NULL);
    CHECK(p && !strncmp(p, B "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n", strlen(B) + 64));
    CHECK(p && strstr(p, "unchecked.\n\n<｜User｜>q<｜Assistant｜><think>"));
    free(p);
    expect("[{\"role\":\"user\",\"content\":\"q\"}]", &chat_max, B "<｜User｜>q<｜Assistant｜></think>");
    lt_chat_options bad = {.thinking = 1, .reasoning_effort = "75"};
    free(encode("[{\"role\":\"user\",\"content\":\"q\"}]", &bad, LT_ERR_ARG, "reasoning_effort '75'"));
}

#define PRE75 "<｜System｜>Reasoning Effort: 75 (range 1-100, the higher the value, the more thorough the reasoning)\n\n"

LT_TEST(chat, v41_rules) {
    lt_chat_options think = {.format = LT_CHAT_V41, .thinking = 1}, chat = {.format = LT_CHAT_V41};
    expect("[{\"role\":\"user\",\"content\":\"What is 2+2?\"}]", &think, B PRE75 "<｜User｜>What is 2+2?<｜Assistant｜><think>");
    lt_chat_options chat_max = {.format = LT_CHAT_V41, .reasoning_effort = "max"};
    expect("[{\"role\":\"user\",\"content\":\"q\"}]", &chat_max, B "<｜User｜>q<｜Assistant｜></think>");
    expect("[{\"role\":\"system\",\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":\"Hi\"}]", &chat,
           B "<｜System｜>You are terse.<｜User｜>Hi<｜Assistant｜></think>");
    expect("[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"U\"}]", &think,
           B PRE75 "S<｜User｜>U<｜Assistant｜><think>");
    expect("[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"q1\"},{\"role\":\"assistant\","
           "\"content\":\"a1\"},{\"role\":\"system\",\"content\":\"mid\"}]", &chat,
           B "<｜System｜>S<｜User｜>q1<｜Assistant｜></think>a1" E "<｜System｜>mid<｜Assistant｜></think>");
    const char *call = "[{\"role\":\"user\",\"content\":\"weather in Paris?\"},{\"role\":\"assistant\",\"content\":\"\","
                       "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                       "\"arguments\":\"{\\\"city\\\": \\\"Paris\\\", \\\"n\\\": 3}\"}}]}]";
    char *p = encode(call, &chat, LT_OK, NULL);
    CHECK(p && strstr(p, "\n\n<｜DSML｜ calls>\n<｜DSML｜ invoke name=\"get_weather\">\n"
                         "<｜DSML｜ parameter name=\"city\" string=\"true\">Paris</｜DSML｜ parameter>\n"
                         "<｜DSML｜ parameter name=\"n\" string=\"false\">3</｜DSML｜ parameter>\n</｜DSML｜ invoke>\n"
                         "</｜DSML｜ calls>" E));
    free(p);
}

LT_TEST(chat, v41_reasoning_effort_values) {
    static const char *const in[] = {"low", "high", "max", "1", "42", "100"};
    static const char *const num[] = {"50", "75", "100", "1", "42", "100"};
    for (int i = 0; i < 6; i++) {
        lt_chat_options o = {.format = LT_CHAT_V41, .thinking = 1, .reasoning_effort = in[i]};
        char *p = encode("[{\"role\":\"user\",\"content\":\"q\"}]", &o, LT_OK, NULL);
        char want[64];
        snprintf(want, sizeof want, "Reasoning Effort: %s (range", num[i]);
        CHECKF(p && strstr(p, want), "%s -> %s", in[i], p ? p : "");
        free(p);
    }
    static const char *const bad[] = {"0", "101", "-1", "medium", "", "7x"};
    for (int i = 0; i < 6; i++) {
        lt_chat_options o = {.format = LT_CHAT_V41, .thinking = 1, .reasoning_effort = bad[i]};
        free(encode("[{\"role\":\"user\",\"content\":\"q\"}]", &o, LT_ERR_ARG, "reasoning_effort"));
    }
}

LT_TEST(chat, content_parts_and_request_tools) {
    lt_chat_options chat = {0};
    expect("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]",
           &chat, B "<｜User｜>a\n\nb<｜Assistant｜></think>");
    free(encode("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":\"x\"}]}]", &chat,
                LT_ERR_UNSUPPORTED, "content[0]"));
    json_t *m = json_loads("[{\"role\":\"user\",\"content\":\"w?\"}]", 0, NULL);
    json_t *tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"g\",\"parameters\":{\"a\":\"é\\n\"}}}]",
                               0, NULL);
    char *p;
    size_t len;
    CHECK(lt_chat_encode(m, tools, &chat, &p, &len, NULL) == LT_OK);
    CHECK(!strncmp(p, B "\n\n## Tools\n\n", strlen(B) + 11));
    CHECK(strstr(p, "\n\n{\"name\": \"g\", \"parameters\": {\"a\": \"é\\n\"}}\n\nYou MUST"));
    CHECK(strlen(p) == len);
    free(p);
    json_decref(m);
    json_decref(tools);
}

LT_TEST(chat, response_format_and_wo_eos) {
    lt_chat_options chat = {0};
    expect("[{\"role\":\"system\",\"content\":\"S\",\"response_format\":{\"type\":\"json_object\",\"n\":2.0}},"
           "{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":\"{\\\"a\\\"\",\"wo_eos\":true}]",
           &chat, B "S\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n"
                  "{\"type\": \"json_object\", \"n\": 2.0}<｜User｜>q<｜Assistant｜></think>{\"a\"");
}

/* JSON inside prompts is Python's json.dumps(ensure_ascii=False) text:
 * float repr, ", " and ": " separators, \\u00XX only for control bytes. */
LT_TEST(chat, json_is_written_like_python) {
    json_t *m = json_loads("[{\"role\":\"user\",\"content\":\"q\"}]", 0, NULL);
    json_t *tools = json_loads(
        "[{\"function\":{\"v\":[1e16, 1e15, 0.0001, 1e-05, -0.0, 0.1, 0.3333333333333333, 123456.789, 2.5e-300, "
        "1.7976931348623157e308, 100.0, 3, -7, \"\\u0001\\u007f\\u2028\\\"\\\\/\", {}, []]}}]", 0, NULL);
    char *p;
    size_t len;
    lt_chat_options chat = {0};
    CHECK(m && tools && lt_chat_encode(m, tools, &chat, &p, &len, NULL) == LT_OK);
    const char *want = "{\"v\": [1e+16, 1000000000000000.0, 0.0001, 1e-05, -0.0, 0.1, 0.3333333333333333, 123456.789, "
                       "2.5e-300, 1.7976931348623157e+308, 100.0, 3, -7, \"\\u0001\x7f\u2028\\\"\\\\/\", {}, []]}";
    CHECKF(strstr(p, want), "%s", p);
    free(p);
    json_decref(m);
    json_decref(tools);
}

LT_TEST(chat, bad_input_is_an_error) {
    lt_chat_options chat = {0}, v41 = {.format = LT_CHAT_V41};
    free(encode("{\"role\":\"user\"}", &chat, LT_ERR_ARG, "array"));
    free(encode("[{\"role\":\"wizard\",\"content\":\"x\"}]", &chat, LT_ERR_ARG, "messages[0].role 'wizard'"));
    free(encode("[{\"content\":\"x\"}]", &chat, LT_ERR_ARG, "messages[0]"));
    free(encode("[{\"role\":\"developer\",\"content\":\"x\"}]", &v41, LT_ERR_ARG, "V4.1"));
    free(encode("[{\"role\":\"developer\",\"content\":\"\"}]", &chat, LT_ERR_ARG, "developer"));
    free(encode("[{\"role\":\"user\",\"content\":5}]", &chat, LT_ERR_ARG, "messages[0].content"));
    free(encode("[{\"role\":\"user\",\"content\":\"x\",\"task\":\"dance\"}]", &chat, LT_ERR_ARG, "task 'dance'"));
    free(encode("[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{}}]}]",
                &chat, LT_ERR_ARG, "function.name"));
}

static void write_config(const char *model_type) {
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"model_type\": \"%s\", \"text_config\": {}}", model_type);
    lt_test_write_temp("config.json", cfg, strlen(cfg));
}

LT_TEST(chat, format_detect_from_model_folder) {
    lt_chat_format f;
    lt_error err;
    write_config("deepseek_v41");
    CHECK(lt_chat_format_detect(lt_test_tmpdir(), NULL, &f, &err) == LT_OK && f == LT_CHAT_V41);
    write_config("deepseek_v4");
    CHECK(lt_chat_format_detect(lt_test_tmpdir(), NULL, &f, &err) == LT_OK && f == LT_CHAT_V4);
    write_config("llama");
    CHECK(lt_chat_format_detect(lt_test_tmpdir(), NULL, &f, &err) == LT_ERR_UNSUPPORTED && strstr(err.msg, "llama"));
    lt_test_write_temp("config.json", "{}", 2);
    CHECK(lt_chat_format_detect(lt_test_tmpdir(), NULL, &f, &err) == LT_OK && f == LT_CHAT_V4);
    lt_test_write_temp("config.json", "{", 1);
    CHECK(lt_chat_format_detect(lt_test_tmpdir(), NULL, &f, &err) == LT_ERR_FORMAT && strstr(err.msg, "config.json"));
    CHECK(lt_chat_format_detect("../shared/assets/deepseek-v4/v4-flash", NULL, &f, &err) == LT_OK && f == LT_CHAT_V4);
    lt_tokenizer *t41;
    CHECK(lt_tokenizer_load(&t41, "../shared/assets/deepseek-v4/tokenizer-v41", &err) == LT_OK);
    CHECK(lt_chat_format_detect("../shared/assets/deepseek-v4/tokenizer-v41", t41, &f, &err) == LT_OK &&
          f == LT_CHAT_V41);
    lt_tokenizer_free(t41);
}
