/*
 * options.c - ccrunner's command line and environment; see options.h.
 *
 * Values are validated strictly ("10s" is not a number of seconds) and every error names
 * the flag or variable, the value, and what it takes, because in a Kubernetes Job the only
 * feedback a user gets is one line in the pod's log.
 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: ccrunner [OPTIONS] [PROMPT]\n"
    "Runs one Claude Code session (an AgenticSession) and streams its messages as JSON lines.\n"
    "\n"
    "  -p, --prompt TEXT        first prompt (INITIAL_PROMPT, PROMPT); required in batch mode\n"
    "      --prompt-file F      the first prompt read from file F, '-' for stdin in batch mode\n"
    "                           (INITIAL_PROMPT_FILE): prompts of any size\n"
    "  -i, --interactive        multi-turn session fed from stdin or the WebSocket (INTERACTIVE)\n"
    "      --model M            model for Claude Code (LLM_MODEL)\n"
    "      --workspace DIR      the agent's working directory (WORKSPACE_PATH); default .\n"
    "      --add-dir DIR        another directory the agent may use (repeatable)\n"
    "      --session-id ID      the AgenticSession name (SESSION_ID, AGENTIC_SESSION_NAME)\n"
    "      --timeout S          whole-session limit in seconds (TIMEOUT); default none\n"
    "      --idle-timeout S     interactive: end after S s without a user message\n"
    "                           (IDLE_TIMEOUT); default 3600\n"
    "      --max-turns N        passed to Claude Code\n"
    "      --permission-mode M  Claude Code permission mode (PERMISSION_MODE); default "
    "acceptEdits\n"
    "      --system-prompt TEXT appended to Claude Code's system prompt (SYSTEM_PROMPT)\n"
    "      --claude PATH        the claude executable (CLAUDE_CODE_PATH)\n"
    "      --output jsonl|text  stdout format; default jsonl\n"
    "  -h, --help               this text\n"
    "      --version            the version\n"
    "\n"
    "Credentials: ANTHROPIC_API_KEY, or Vertex AI with USE_VERTEX_AI=true, VERTEX_PROJECT_ID,\n"
    "VERTEX_LOCATION and GOOGLE_APPLICATION_CREDENTIALS. Tracing: LANGFUSE_* (see README).\n"
    "Exit codes: 0 success, 1 the session failed, 2 a configuration or prerequisite error.\n";

const char *cc_options_usage(void)
{
    return usage_text;
}

/* The first set, non-empty variable of a NULL-terminated list of names. */
static const char *env_any(const char *const *names, const char **which)
{
    for (; *names; names++) {
        const char *v = getenv(*names);
        if (v && *v) {
            if (which) *which = *names;
            return v;
        }
    }
    return NULL;
}

static const char *env1(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* 1 true, 0 false, -1 not a boolean. */
static int parse_bool(const char *v)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) return 1;
        if (!strcasecmp(v, no[i])) return 0;
    }
    return -1;
}

static int parse_seconds(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d <= 0 || d > 30 * 86400.0) return -1;
    *out = d;
    return 0;
}

static int parse_count(const char *v, int *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > 100000) return -1;
    *out = (int)n;
    return 0;
}

static int bad(char *err, size_t errlen, const char *what, const char *value, const char *fix)
{
    snprintf(err, errlen, "%s=%s is invalid: %s", what, value, fix);
    return CC_OPT_USAGE;
}

static const char *const permission_modes[] = {
    "default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto", NULL};

static int known_permission_mode(const char *m)
{
    for (int i = 0; permission_modes[i]; i++)
        if (!strcmp(m, permission_modes[i])) return 1;
    return 0;
}

/* Environment first, so that flags override it. */
static int from_env(struct cc_options *o, char *err, size_t errlen)
{
    static const char *const prompt_vars[] = {"INITIAL_PROMPT", "PROMPT", NULL};
    static const char *const session_vars[] = {"SESSION_ID", "AGENTIC_SESSION_NAME", NULL};
    static const char *const ns_vars[] = {"AGENTIC_SESSION_NAMESPACE", "NAMESPACE", NULL};
    static const char *const vertex_on[] = {"USE_VERTEX_AI", "CLAUDE_CODE_USE_VERTEX", NULL};
    static const char *const vproject[] = {"VERTEX_PROJECT_ID", "ANTHROPIC_VERTEX_PROJECT_ID",
                                           NULL};
    static const char *const vlocation[] = {"VERTEX_LOCATION", "CLOUD_ML_REGION", NULL};
    const char *v, *which = NULL;
    int b;

    o->prompt = env_any(prompt_vars, &which);
    o->prompt_file = env1("INITIAL_PROMPT_FILE");
    if (o->prompt && o->prompt_file) {
        snprintf(err, errlen, "both %s and INITIAL_PROMPT_FILE are set; give the prompt once",
                 which);
        return CC_OPT_USAGE;
    }
    if ((v = env1("INTERACTIVE"))) {
        if ((b = parse_bool(v)) < 0) return bad(err, errlen, "INTERACTIVE", v, "use true or false");
        o->interactive = b;
    }
    o->model = env1("LLM_MODEL");
    if ((v = env1("WORKSPACE_PATH"))) o->workspace = v;
    o->session_id = env_any(session_vars, NULL);
    if ((v = env1("TIMEOUT")) && parse_seconds(v, &o->timeout_s))
        return bad(err, errlen, "TIMEOUT", v, "use a number of seconds, e.g. TIMEOUT=1800");
    if ((v = env1("IDLE_TIMEOUT")) && parse_seconds(v, &o->idle_timeout_s))
        return bad(err, errlen, "IDLE_TIMEOUT", v,
                   "use a number of seconds, e.g. IDLE_TIMEOUT=600");
    if ((v = env1("PERMISSION_MODE"))) o->permission_mode = v;
    o->system_prompt = env1("SYSTEM_PROMPT");
    o->claude_path = env1("CLAUDE_CODE_PATH");

    o->anthropic_api_key = env1("ANTHROPIC_API_KEY");
    o->anthropic_base_url = env1("ANTHROPIC_BASE_URL");
    if ((v = env_any(vertex_on, &which))) {
        if ((b = parse_bool(v)) < 0) return bad(err, errlen, which, v, "use true or false");
        o->use_vertex = b;
    }
    o->vertex_project = env_any(vproject, NULL);
    if ((v = env_any(vlocation, NULL))) o->vertex_location = v;
    o->google_credentials = env1("GOOGLE_APPLICATION_CREDENTIALS");
    o->namespace_name = env_any(ns_vars, NULL);
    o->project_name = env1("PROJECT_NAME");
    o->user_id = env1("USER_ID");
    o->user_name = env1("USER_NAME");
    o->websocket_url = env1("WEBSOCKET_URL");
    o->bot_token = env1("BOT_TOKEN");
    o->termination_log = env1("TERMINATION_LOG");
    return CC_OPT_OK;
}

/* The prompt read from a file: the process's, like argv (one parse replaces it). */
static char *prompt_text;

/* Reads the prompt file whole (stdin for "-"): the kernel caps one argument or variable at
 * 128 KiB, a file has no such limit. */
static int read_prompt(struct cc_options *o, char *err, size_t errlen)
{
    const char *path = o->prompt_file;
    int from_stdin = !strcmp(path, "-");
    if (from_stdin && o->interactive) {
        snprintf(err, errlen,
                 "--prompt-file - reads stdin, which an interactive session uses "
                 "for its messages; give a file");
        return CC_OPT_USAGE;
    }
    FILE *f = from_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "prompt file %.200s cannot be read: %s", path, strerror(errno));
        return CC_OPT_USAGE;
    }
    size_t len = 0, cap = 1 << 16;
    char *text = malloc(cap);
    const char *why = NULL;
    for (;;) {
        if (!text) {
            why = "out of memory";
            break;
        }
        len += fread(text + len, 1, cap - len - 1, f);
        if (len < cap - 1) {
            if (ferror(f)) why = strerror(errno);
            break;
        }
        if (cap >= CC_PROMPT_MAX) {
            why = "larger than " CC_PROMPT_MAX_TEXT;
            break;
        }
        char *more = realloc(text, cap * 2);
        if (!more) free(text);
        text = more;
        cap *= 2;
    }
    if (!from_stdin) fclose(f);
    if (!why && memchr(text, '\0', len)) why = "it holds a NUL byte; give text";
    if (why) {
        snprintf(err, errlen, "prompt file %.200s: %s", path, why);
        free(text);
        return CC_OPT_USAGE;
    }
    text[len] = '\0';
    free(prompt_text);
    o->prompt = prompt_text = text;
    return CC_OPT_OK;
}

/* The value of option argv[*i]: "--opt=value" or the next argument. */
static const char *value_of(int argc, char **argv, int *i, const char *name, char *err,
                            size_t errlen)
{
    const char *a = argv[*i];
    const char *eq = strchr(a, '=');
    if (a[1] == '-' && eq) return eq + 1;
    if (*i + 1 >= argc) {
        snprintf(err, errlen, "%s needs a value; see ccrunner --help", name);
        return NULL;
    }
    return argv[++*i];
}

static int is(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(arg, name, n) && (arg[n] == '\0' || (arg[n] == '=' && name[1] == '-'));
}

int cc_options_parse(struct cc_options *o, int argc, char **argv, char *err, size_t errlen)
{
    memset(o, 0, sizeof(*o));
    o->workspace = ".";
    o->permission_mode = "acceptEdits";
    o->vertex_location = "us-east5";
    o->idle_timeout_s = 3600;
    err[0] = '\0';
    int rc = from_env(o, err, errlen);
    if (rc) return rc;

    const char *positional = NULL, *flag_prompt = NULL, *flag_file = NULL;
    int no_more_options = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (no_more_options || a[0] != '-' || !a[1]) {
            if (positional) {
                snprintf(err, errlen,
                         "more than one prompt given (\"%.40s\" and \"%.40s\"); quote the prompt",
                         positional, a);
                return CC_OPT_USAGE;
            }
            positional = a;
        } else if (!strcmp(a, "--")) {
            no_more_options = 1;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return CC_OPT_HELP;
        } else if (!strcmp(a, "--version")) {
            return CC_OPT_VERSION;
        } else if (!strcmp(a, "-i") || !strcmp(a, "--interactive")) {
            o->interactive = 1;
        } else if (is(a, "-p") || is(a, "--prompt")) {
            if (!(v = value_of(argc, argv, &i, "--prompt", err, errlen))) return CC_OPT_USAGE;
            flag_prompt = v;
        } else if (is(a, "--prompt-file")) {
            if (!(v = value_of(argc, argv, &i, "--prompt-file", err, errlen))) return CC_OPT_USAGE;
            flag_file = v;
        } else if (is(a, "--model")) {
            if (!(v = value_of(argc, argv, &i, "--model", err, errlen))) return CC_OPT_USAGE;
            o->model = v;
        } else if (is(a, "--workspace")) {
            if (!(v = value_of(argc, argv, &i, "--workspace", err, errlen))) return CC_OPT_USAGE;
            o->workspace = v;
        } else if (is(a, "--add-dir")) {
            if (!(v = value_of(argc, argv, &i, "--add-dir", err, errlen))) return CC_OPT_USAGE;
            if (o->n_add_dirs == CC_MAX_ADD_DIRS) {
                snprintf(err, errlen, "more than %d --add-dir options", CC_MAX_ADD_DIRS);
                return CC_OPT_USAGE;
            }
            o->add_dirs[o->n_add_dirs++] = v;
        } else if (is(a, "--session-id")) {
            if (!(v = value_of(argc, argv, &i, "--session-id", err, errlen))) return CC_OPT_USAGE;
            o->session_id = v;
        } else if (is(a, "--idle-timeout")) {
            if (!(v = value_of(argc, argv, &i, "--idle-timeout", err, errlen))) return CC_OPT_USAGE;
            if (parse_seconds(v, &o->idle_timeout_s))
                return bad(err, errlen, "--idle-timeout", v,
                           "use a number of seconds, e.g. --idle-timeout 600");
        } else if (is(a, "--timeout")) {
            if (!(v = value_of(argc, argv, &i, "--timeout", err, errlen))) return CC_OPT_USAGE;
            if (parse_seconds(v, &o->timeout_s))
                return bad(err, errlen, "--timeout", v,
                           "use a number of seconds, e.g. --timeout 1800");
        } else if (is(a, "--max-turns")) {
            if (!(v = value_of(argc, argv, &i, "--max-turns", err, errlen))) return CC_OPT_USAGE;
            if (parse_count(v, &o->max_turns))
                return bad(err, errlen, "--max-turns", v, "use a whole number from 1 to 100000");
        } else if (is(a, "--permission-mode")) {
            if (!(v = value_of(argc, argv, &i, "--permission-mode", err, errlen)))
                return CC_OPT_USAGE;
            o->permission_mode = v;
        } else if (is(a, "--system-prompt")) {
            if (!(v = value_of(argc, argv, &i, "--system-prompt", err, errlen)))
                return CC_OPT_USAGE;
            o->system_prompt = v;
        } else if (is(a, "--claude")) {
            if (!(v = value_of(argc, argv, &i, "--claude", err, errlen))) return CC_OPT_USAGE;
            o->claude_path = v;
        } else if (is(a, "--output")) {
            if (!(v = value_of(argc, argv, &i, "--output", err, errlen))) return CC_OPT_USAGE;
            if (!strcmp(v, "jsonl"))
                o->output = CC_OUTPUT_JSONL;
            else if (!strcmp(v, "text"))
                o->output = CC_OUTPUT_TEXT;
            else
                return bad(err, errlen, "--output", v, "use jsonl or text");
        } else {
            snprintf(err, errlen, "unknown option %.60s; see ccrunner --help", a);
            return CC_OPT_USAGE;
        }
    }
    if (positional) flag_prompt = positional;
    if (flag_prompt && flag_file) {
        snprintf(err, errlen, "a prompt and --prompt-file both given; give the prompt once");
        return CC_OPT_USAGE;
    }
    if (flag_prompt || flag_file) { /* flags win over the environment */
        o->prompt = flag_prompt;
        o->prompt_file = flag_file;
    }
    if (!known_permission_mode(o->permission_mode))
        return bad(err, errlen, "permission mode", o->permission_mode,
                   "use default, acceptEdits, plan, bypassPermissions, dontAsk or auto");
    if (o->prompt_file) return read_prompt(o, err, errlen);
    return CC_OPT_OK;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int cc_options_check(const struct cc_options *o, char *err, size_t errlen)
{
    if (!o->interactive && (!o->prompt || !*o->prompt)) {
        snprintf(
            err, errlen,
            "no prompt: give one as an argument, with -p or --prompt-file, or in INITIAL_PROMPT "
            "(or run with --interactive)");
        return CC_OPT_USAGE;
    }
    if (o->use_vertex) {
        if (!o->vertex_project) {
            snprintf(err, errlen,
                     "Vertex AI is on (USE_VERTEX_AI) but VERTEX_PROJECT_ID is not "
                     "set; set it to the Google Cloud project");
            return CC_OPT_USAGE;
        }
        if (o->google_credentials && access(o->google_credentials, R_OK) != 0) {
            snprintf(err, errlen, "GOOGLE_APPLICATION_CREDENTIALS=%.200s cannot be read: %s",
                     o->google_credentials, strerror(errno));
            return CC_OPT_USAGE;
        }
    } else if (!o->anthropic_api_key) {
        snprintf(err, errlen,
                 "no model credentials: set ANTHROPIC_API_KEY, or USE_VERTEX_AI=true "
                 "with VERTEX_PROJECT_ID");
        return CC_OPT_USAGE;
    }
    if (!is_dir(o->workspace)) {
        snprintf(err, errlen,
                 "workspace %.200s is not a directory; create it or set "
                 "--workspace / WORKSPACE_PATH",
                 o->workspace);
        return CC_OPT_USAGE;
    }
    for (int i = 0; i < o->n_add_dirs; i++)
        if (!is_dir(o->add_dirs[i])) {
            snprintf(err, errlen, "--add-dir %.200s is not a directory", o->add_dirs[i]);
            return CC_OPT_USAGE;
        }
    if (o->websocket_url && strncmp(o->websocket_url, "ws://", 5) &&
        strncmp(o->websocket_url, "wss://", 6)) {
        snprintf(err, errlen, "WEBSOCKET_URL=%.200s is invalid: use a ws:// or wss:// URL",
                 o->websocket_url);
        return CC_OPT_USAGE;
    }
    return CC_OPT_OK;
}
