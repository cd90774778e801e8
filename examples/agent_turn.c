/*
 * agent_turn.c - liblangfuse in forty lines: trace one fake agent turn.
 *
 * Configured from the LANGFUSE_* environment (LANGFUSE_ENABLED=true, the keys, the host).
 * Records what a coding agent's turn looks like in Langfuse: a trace with a session and a
 * user, a generation per model call with usage and cost, tool calls (one failing), then
 * flushes and prints the trace id on stdout.
 */
#include <langfuse/langfuse.h>
#include <stdio.h>

int main(void)
{
    lf_client *lf = lf_client_new_from_env();
    if (!lf_client_enabled(lf)) {
        fprintf(stderr, "agent_turn: set LANGFUSE_ENABLED=true and the LANGFUSE_* keys\n");
        lf_client_free(lf);
        return 2;
    }
    lf_obs *trace = lf_trace_start(lf, "agentic-session", NULL);
    lf_trace_set_session_id(trace, "demo-session");
    lf_trace_set_user_id(trace, "demo-user");
    lf_trace_add_tag(trace, "example");
    lf_trace_set_input_json(trace, "{\"prompt\":\"Count the files and fix the build\"}");

    lf_obs *turn = lf_obs_start(trace, LF_OBS_GENERATION, "claude-query");
    lf_obs_set_model(turn, "claude-sonnet-4-5");
    lf_obs_set_input_string(turn, "Count the files and fix the build");

    static const struct {
        const char *tool, *input, *output;
        int failed;
    } steps[] = {
        {"Bash", "{\"command\":\"ls | wc -l\"}", "42", 0},
        {"Write", "{\"file_path\":\"/etc/hosts\"}", "Permission to use Write was denied", 1},
    };
    for (int i = 0; i < 2; i++) {
        lf_obs *call = lf_obs_start(turn, LF_OBS_SPAN, "model-call");
        lf_obs_set_metadata_int(call, "input_tokens", 1200 + 100 * i);
        lf_obs_set_metadata_int(call, "output_tokens", 40);
        lf_obs_end(call);
        lf_obs *tool = lf_obs_start(turn, LF_OBS_TOOL, steps[i].tool);
        lf_obs_set_input_json(tool, steps[i].input);
        lf_obs_set_output_string(tool, steps[i].output);
        if (steps[i].failed) {
            lf_obs_set_level(tool, LF_LEVEL_ERROR);
            lf_obs_set_status_message(tool, steps[i].output);
        }
        lf_obs_end(tool);
    }
    lf_obs_set_usage(turn, "input", 2500);
    lf_obs_set_usage(turn, "output", 80);
    lf_obs_set_cost(turn, "input", 0.0075);
    lf_obs_set_cost(turn, "output", 0.0012);
    lf_obs_set_cost(turn, "total", 0.0087);
    lf_obs_set_output_string(turn, "There are 42 files; I could not write /etc/hosts.");
    lf_obs_end(turn);

    lf_trace_set_output_json(trace, "{\"success\":true,\"turns\":1}");
    char id[33];
    lf_obs_trace_id(trace, id);
    lf_obs_end(trace);

    int rc = lf_client_shutdown(lf, -1);
    struct lf_stats s;
    lf_client_stats(lf, &s);
    fprintf(stderr, "agent_turn: %llu observations recorded, %llu delivered (%s)\n",
            (unsigned long long)s.recorded, (unsigned long long)s.delivered, lf_strerror(rc));
    lf_client_free(lf);
    printf("%s\n", id);
    return rc == LF_OK ? 0 : 1;
}
