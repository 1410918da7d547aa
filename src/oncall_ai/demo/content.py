"""Text of the demo sandbox: prompt files, judge rubrics, platform YAML files, and the short
request/response texts carried by judge events and calibration items.

Files are `string.Template`s whose `${slot}`s change over the week: every commit of the generated
history flips one slot (a typo fix, a comment, a reworded rule, a pin bump), so commits compose in
any order and every diff is small and readable. `{{...}}` in prompt text is the prompt's own
placeholder syntax, left as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from string import Template


@dataclass(frozen=True)
class Edit:
    """One change of one slot of one file, with the commit message a person would write."""

    path: str
    slot: str
    new: str
    message: str


@dataclass
class FileSpec:
    path: str
    template: str
    slots: dict[str, str]
    harmless: list[Edit] = field(default_factory=list)

    def render(self, values: dict[str, str]) -> str:
        return Template(self.template).substitute(values)


# --------------------------------------------------------------------------------------------
# The prompt repo
# --------------------------------------------------------------------------------------------

PROMPT_README = """# prompts

Prompt templates of the AI features, one folder per feature, and the rubrics of the LLM judges
that score production traffic (`judges/`).

- Every change goes through review by the feature's owners (see CODEOWNERS).
- Deploys: the prompt service picks up `main` a few minutes after a merge.
${readme_eval}${readme_rollback}
| folder | feature | owners |
| --- | --- | --- |
| summarizer/ | document summaries | @docs-ai |
| support/ | support assistant | @support-ai |
| search/ | search query rewrite and rerank | @search-ai |
| judges/ | judge rubrics (helpfulness, relevance) | @eval-team |
${readme_footer}"""

PROMPT_CODEOWNERS = """# Owners review every change to their folder.
summarizer/  @docs-ai
support/     @support-ai
search/      @search-ai
judges/      @eval-team${codeowners_extra}
"""

SUMMARIZER_SYSTEM = """# Summarizer: system prompt
${owner_comment}
You are a careful assistant that summarizes documents for ${audience}.

## Rules
- ${rule_length}
- Preserve numbers, dates and names exactly as they appear in the source.
- ${rule_language}
- ${rule_long}
- If the document does not contain enough information, say so instead of guessing.
- Never invent facts that are not in the source ${typo_document}.
${rule_enterprise}
## Output
Return JSON with the keys `title`, `bullets` (a list of strings) and `confidence` (low, medium or high).
${format_note}"""

SUMMARIZER_USER = """Summarize the following ${doc_kind}.
${context_line}
<document title="{{title}}" language="{{language}}">
{{document}}
</document>

${user_tail}
"""

SUPPORT_SYSTEM = """# Support assistant: system prompt
${owner_comment}
You help customers of Acme Cloud with questions about their account, billing and the product.

## How to answer
- Search the knowledge base (tool `kb_search`) before answering any product question.
- ${rule_grounding}
- ${rule_language}
- ${rule_tone}
- If the customer asks to cancel, link the cancellation page and do not try to retain them.
- Escalate to a human (tool `handoff`) for refunds above 500 EUR or legal${typo_legal}.
${rule_enterprise}${rule_long}
## Never
- Never promise features that are not released.
- Never ask for passwords or full card numbers.
"""

SUPPORT_USER = """Customer plan: {{plan}}
Customer language: {{language}}
${history_line}
Knowledge base results:
{{kb_results}}

Customer message:
{{message}}
${user_tail}"""

SEARCH_REWRITE = """# Search: query rewrite
${owner_comment}
Rewrite the user's search query for the retrieval engine.

- Keep product names and error codes exactly as typed.
- ${rule_expand}
- ${rule_language}
- Return only the rewritten query, on one line${typo_line}.
"""

SEARCH_RERANK = """# Search: rerank
${owner_comment}
You receive a query and up to 20 candidate passages. Return the ids of the 5 most useful passages,
best first.

Ranking criteria, in order:
1. ${rule_rank}
2. Prefer passages from the current product version over archived ones.
3. ${rule_language}
4. ${rule_long}
${rule_enterprise}
Output: a JSON list of passage ids${typo_ids}.
"""

JUDGE_HELPFULNESS = """# Judge rubric: helpfulness (1-5)
${owner_comment}
You rate how helpful the RESPONSE is for the REQUEST, on a scale of 1 to 5.

- 5: fully answers the request, correct, well organised, nothing important missing.
- 4: answers the request with minor omissions or small style problems.
- 3: partly answers; a reader would need to look elsewhere for an important part.
- 2: mostly unhelpful, or contains a factual error that matters.
- 1: does not answer, is wrong, or is in the wrong language.

${rule_strict}
Reply with the score only${typo_score}.
"""

JUDGE_RELEVANCE = """# Judge rubric: relevance (1-5)
${owner_comment}
You rate how relevant the RESULTS are to the QUERY, on a scale of 1 to 5.

- 5: the top results answer the query directly.
- 4: the top results are relevant; the best one is not first.
- 3: some relevant results, mixed with off-topic ones.
- 2: mostly off-topic results.
- 1: nothing relevant.

${rule_strict}
Reply with the score only${typo_score}.
"""


def prompt_files() -> list[FileSpec]:
    """The prompt repo's files with their initial slot values and harmless edits (in the order a
    team would plausibly make them)."""
    return [
        FileSpec("README.md", PROMPT_README, {
            "readme_eval": "", "readme_rollback": "", "readme_footer": ""}, [
            Edit("README.md", "readme_eval",
                 "- Production traffic is scored by LLM judges (10% sample); see the eval dashboard.\n",
                 "README: mention the eval-on-traffic sample"),
            Edit("README.md", "readme_rollback",
                 "- To roll back a prompt, revert the commit on main; do not force-push.\n",
                 "README: how to roll back a prompt"),
            Edit("README.md", "readme_footer", "\nQuestions: #ai-platform on Slack.\n",
                 "README: add the support channel"),
        ]),
        FileSpec("CODEOWNERS", PROMPT_CODEOWNERS, {"codeowners_extra": ""}, [
            Edit("CODEOWNERS", "codeowners_extra", "\nREADME.md    @ai-platform",
                 "CODEOWNERS: platform team owns the README"),
        ]),
        FileSpec("summarizer/system.md", SUMMARIZER_SYSTEM, {
            "owner_comment": "",
            "audience": "busy readers",
            "rule_length": "Write 3 to 5 bullet points; each bullet names the section it comes from.",
            "rule_language": "Answer in the language of the document.",
            "rule_long": "For long documents, cover every section, not only the first pages.",
            "typo_document": "documnet",
            "rule_enterprise": "",
            "format_note": "",
        }, [
            Edit("summarizer/system.md", "typo_document", "document", "summarizer: fix typo in system prompt"),
            Edit("summarizer/system.md", "owner_comment",
                 "<!-- owner: @docs-ai. Output keys are parsed by the docs app: keep them stable. -->\n",
                 "summarizer: add an owner comment"),
            Edit("summarizer/system.md", "audience", "busy readers at work",
                 "summarizer: clarify the audience"),
            Edit("summarizer/system.md", "format_note", "Keys are lowercase; do not add other keys.\n",
                 "summarizer: spell out the output keys rule"),
        ]),
        FileSpec("summarizer/user.md", SUMMARIZER_USER, {
            "doc_kind": "document",
            "context_line": "",
            "user_tail": "Remember: summarize only what the documnet says.",
        }, [
            Edit("summarizer/user.md", "user_tail", "Remember: summarize only what the document says.",
                 "summarizer: fix typo in user template"),
            Edit("summarizer/user.md", "context_line", "The reader opened it from {{source_app}}.\n",
                 "summarizer: pass the source app to the template"),
            Edit("summarizer/user.md", "doc_kind", "document (it may be an email thread)",
                 "summarizer: mention email threads"),
        ]),
        FileSpec("support/system.md", SUPPORT_SYSTEM, {
            "owner_comment": "",
            "rule_grounding": "Base every answer on the knowledge base results and link the article you used.",
            "rule_language": "Reply in the customer's language.",
            "rule_tone": "Be friendly and concise; use short paragraphs.",
            "typo_legal": " questons",
            "rule_enterprise": "",
            "rule_long": "",
        }, [
            Edit("support/system.md", "typo_legal", " questions", "support: fix typo"),
            Edit("support/system.md", "owner_comment",
                 "<!-- owner: @support-ai. Tool names must match the agent config. -->\n",
                 "support: add an owner comment"),
            Edit("support/system.md", "rule_tone", "Be friendly and concise; use short paragraphs and no jargon.",
                 "support: no jargon"),
        ]),
        FileSpec("support/user.md", SUPPORT_USER, {
            "history_line": "",
            "user_tail": "",
        }, [
            Edit("support/user.md", "history_line", "Previous messages in this ticket: {{history_count}}\n",
                 "support: pass the ticket history count"),
            Edit("support/user.md", "user_tail", "\n(Reply as the support assistant.)\n",
                 "support: make the speaker explicit in the user template"),
        ]),
        FileSpec("search/query_rewrite.md", SEARCH_REWRITE, {
            "owner_comment": "",
            "rule_expand": "Expand abbreviations (k8s -> kubernetes) and fix obvious misspellings.",
            "rule_language": "Keep the query in its language.",
            "typo_line": " with no quotes",
        }, [
            Edit("search/query_rewrite.md", "owner_comment",
                 "<!-- owner: @search-ai -->\n", "search: add an owner comment"),
            Edit("search/query_rewrite.md", "typo_line", ", without quotes", "search: wording"),
            Edit("search/query_rewrite.md", "rule_expand",
                 "Expand abbreviations (k8s -> kubernetes, 2fa -> two-factor) and fix obvious misspellings.",
                 "search: one more abbreviation example"),
        ]),
        FileSpec("search/rerank.md", SEARCH_RERANK, {
            "owner_comment": "",
            "rule_rank": "Passages that answer the query directly, with the exact product or error code.",
            "rule_language": "Prefer passages in the query's language when they are equally useful.",
            "rule_long": "For long or multi-part queries, cover each part with at least one passage.",
            "rule_enterprise": "",
            "typo_ids": ", most relevent first",
        }, [
            Edit("search/rerank.md", "typo_ids", ", most relevant first", "search: fix typo in rerank prompt"),
            Edit("search/rerank.md", "owner_comment",
                 "<!-- owner: @search-ai. Evaluated by the relevance judge. -->\n",
                 "search: add an owner comment to the rerank prompt"),
        ]),
        FileSpec("judges/helpfulness.md", JUDGE_HELPFULNESS, {
            "owner_comment": "", "rule_strict": "", "typo_score": ", as a single digit",
        }, [
            Edit("judges/helpfulness.md", "owner_comment",
                 "<!-- owner: @eval-team. Changing this file changes every helpfulness score; re-run calibration. -->\n",
                 "judges: add a warning comment to the helpfulness rubric"),
        ]),
        FileSpec("judges/relevance.md", JUDGE_RELEVANCE, {
            "owner_comment": "", "rule_strict": "", "typo_score": ", as a single digit",
        }, [
            Edit("judges/relevance.md", "owner_comment",
                 "<!-- owner: @eval-team -->\n", "judges: add an owner comment to the relevance rubric"),
        ]),
    ]


# The files each feature owns in the prompt repo (its `prompts:` globs in oncall-ai.yaml).
FEATURE_PROMPT_FILES = {
    "summarizer": ("summarizer/system.md", "summarizer/user.md"),
    "support": ("support/system.md", "support/user.md"),
    "search": ("search/rerank.md", "search/query_rewrite.md"),
}

# Incident edits of a feature's prompt: variant -> (path, slot, new text, commit message).
# "global" lowers quality everywhere; the others only in one slice, as their wording says.
PROMPT_INCIDENTS: dict[str, dict[str, tuple[str, str, str, str]]] = {
    "summarizer": {
        "global": ("summarizer/system.md", "rule_length",
                   "Write at most 2 short bullet points; skip section references to keep it brief.",
                   "summarizer: shorter summaries (fewer tokens)"),
        "language=de": ("summarizer/system.md", "rule_language",
                        "Answer in the language of the document. For German documents, use short "
                        "imperative bullets of at most 6 words.",
                        "summarizer: tighter bullets for German"),
        "language=ja": ("summarizer/system.md", "rule_language",
                        "Answer in the language of the document. Japanese documents are machine-translated "
                        "to English first; summarize the translation.",
                        "summarizer: summarize Japanese via the English translation"),
        "language=fr": ("summarizer/system.md", "rule_language",
                        "Answer in the language of the document, except French: answer French documents "
                        "in English (the fr model output was too long).",
                        "summarizer: English output for French documents"),
        "persona=enterprise": ("summarizer/system.md", "rule_enterprise",
                               "- For enterprise accounts, skip the customer glossary (the lookup was slow).\n",
                               "summarizer: skip glossary lookup for enterprise"),
        "shape=long_doc": ("summarizer/system.md", "rule_long",
                           "For long documents, summarize the first 2,000 words only.",
                           "summarizer: cap the input of long documents"),
    },
    "support": {
        "global": ("support/system.md", "rule_grounding",
                   "Answer from your own knowledge first; search the knowledge base only when unsure.",
                   "support: fewer tool calls (latency)"),
        "language=de": ("support/system.md", "rule_language",
                        "Reply in the customer's language; for German customers use the formal template "
                        "answers from the macro library verbatim.",
                        "support: use the German macro library"),
        "language=ja": ("support/system.md", "rule_language",
                        "Reply in English; add a one-line Japanese greeting for Japanese customers.",
                        "support: English replies with a Japanese greeting"),
        "language=fr": ("support/system.md", "rule_language",
                        "Reply in the customer's language; French replies go through the glossary "
                        "rewrite step first.",
                        "support: French glossary rewrite"),
        "persona=enterprise": ("support/system.md", "rule_enterprise",
                               "- Enterprise customers: always hand off to their account manager first.\n",
                               "support: route enterprise customers to account managers"),
        "shape=long_doc": ("support/system.md", "rule_long",
                           "- Long tickets: answer only the last message.\n",
                           "support: focus on the last message of long tickets"),
    },
    "search": {
        "global": ("search/rerank.md", "rule_rank",
                   "The most recent passages first; break ties by length.",
                   "search: rerank by recency"),
        "language=de": ("search/rerank.md", "rule_language",
                        "Prefer English passages; German passages only when no English one matches.",
                        "search: prefer English passages"),
        "language=ja": ("search/rerank.md", "rule_language",
                        "Prefer English passages; Japanese passages only when no English one matches.",
                        "search: prefer English passages over Japanese"),
        "language=fr": ("search/rerank.md", "rule_language",
                        "Prefer English passages; French passages only when no English one matches.",
                        "search: prefer English passages over French"),
        "persona=enterprise": ("search/rerank.md", "rule_enterprise",
                               "5. Enterprise accounts: ignore the customer's private docs (too slow to fetch).\n",
                               "search: skip private docs for enterprise"),
        "shape=long_doc": ("search/rerank.md", "rule_long",
                           "For long or multi-part queries, rank by the first part only.",
                           "search: simplify multi-part query ranking"),
    },
}

# Judge rubric changes that make the judge stricter (judge_drift through the prompt repo).
JUDGE_RUBRIC_INCIDENTS = {
    "helpfulness": ("judges/helpfulness.md", "rule_strict",
                    "Be strict: give 5 only when the response also cites its sources, and at most 3 when "
                    "anything could be clearer.\n",
                    "judges: stricter helpfulness rubric (align with the new docs guideline)"),
    "relevance": ("judges/relevance.md", "rule_strict",
                  "Be strict: give 5 only when the first result alone answers the query; otherwise at most 3.\n",
                  "judges: stricter relevance rubric"),
}


# --------------------------------------------------------------------------------------------
# The platform repo
# --------------------------------------------------------------------------------------------

MODELS_YAML = """# Model pins: pin key -> model id, read by the gateway at deploy time.
# Pin a dated snapshot; "-latest" aliases move when the provider updates them.
${models_comment}
summarizer: ${pin_summarizer}${pin_comment_summarizer}
support: ${pin_support}${pin_comment_support}
rerank: ${pin_rerank}${pin_comment_rerank}

# Not used by an AI feature directly: the index pipeline embeds documents with it.
embeddings: ${pin_embeddings}
"""

INDEXES_YAML = """# Retrieval indexes served by the search platform.
# version: the build the retrievers read; bump it to switch (the old build is kept for 14 days).
${indexes_comment}
kb-docs:
  version: "${kb_version}"${kb_version_comment}
  embedding_model: ${kb_embedding}
  chunk_tokens: ${kb_chunk}
  source: help-center + product docs

legal-archive:
  version: "${legal_version}"
  embedding_model: vendor-c/embed-3-large
  chunk_tokens: 1024
  source: contracts (not used by an AI feature yet)
"""

JUDGES_YAML = """# LLM judges that score sampled production traffic (10%).
# prompt: the rubric's path in the prompts repo. Changing either key changes the judge:
# re-run the calibration set (`oncall-ai judge calibrate`) before and after.
${judges_comment}
helpfulness:
  model: ${judge_helpfulness_model}
  prompt: judges/helpfulness.md
  temperature: 0

relevance:
  model: ${judge_relevance_model}
  prompt: judges/relevance.md
  temperature: 0
"""

PLATFORM_README = """# platform

Runtime configuration of the AI platform: model pins (`models.yaml`), retrieval indexes
(`indexes.yaml`) and the LLM judges (`judges.yaml`). Deployed a few minutes after a merge to main.
${platform_readme_extra}"""


def platform_files(initial: dict[str, str]) -> list[FileSpec]:
    """Platform repo files; `initial` carries the seeded pin/index/judge values."""
    return [
        FileSpec("README.md", PLATFORM_README, {"platform_readme_extra": ""}, [
            Edit("README.md", "platform_readme_extra",
                 "\nRollback: revert the commit; the deploy job picks it up in about 5 minutes.\n",
                 "README: rollback note"),
        ]),
        FileSpec("models.yaml", MODELS_YAML, {
            "models_comment": "",
            "pin_summarizer": initial["pin_summarizer"], "pin_comment_summarizer": initial.get("pin_comment_summarizer", ""),
            "pin_support": initial["pin_support"], "pin_comment_support": initial.get("pin_comment_support", ""),
            "pin_rerank": initial["pin_rerank"], "pin_comment_rerank": initial.get("pin_comment_rerank", ""),
            "pin_embeddings": "vendor-c/embed-3-large",
        }, [
            Edit("models.yaml", "models_comment", "# Owners: @ai-platform. Announce pin changes in #ai-platform.\n",
                 "models.yaml: owners comment"),
        ]),
        FileSpec("indexes.yaml", INDEXES_YAML, {
            "indexes_comment": "",
            "kb_version": initial["kb_version"], "kb_version_comment": initial.get("kb_version_comment", ""),
            "kb_embedding": "vendor-c/embed-3-large", "kb_chunk": "512",
            "legal_version": initial["legal_version"],
        }, [
            Edit("indexes.yaml", "indexes_comment", "# Owners: @search-platform.\n", "indexes.yaml: owners comment"),
        ]),
        FileSpec("judges.yaml", JUDGES_YAML, {
            "judges_comment": "",
            "judge_helpfulness_model": initial["judge_helpfulness_model"],
            "judge_relevance_model": initial["judge_relevance_model"],
        }, [
            Edit("judges.yaml", "judges_comment", "# Owners: @eval-team.\n", "judges.yaml: owners comment"),
        ]),
    ]


# --------------------------------------------------------------------------------------------
# Request / response texts (judge events, calibration items)
# --------------------------------------------------------------------------------------------

INPUTS = {
    "summarizer": {
        "en": ["Summarize: Q3 board minutes (12 pages)", "Summarize: incident postmortem INC-2291",
               "Summarize: vendor contract renewal thread", "Summarize: onboarding guide v4"],
        "de": ["Zusammenfassen: Protokoll Betriebsrat Oktober", "Zusammenfassen: Angebot Rechenzentrum Nord",
               "Zusammenfassen: Datenschutz-Folgenabschätzung"],
        "fr": ["Résumer : compte rendu du comité produit", "Résumer : appel d'offres logistique"],
        "es": ["Resumir: informe trimestral de ventas", "Resumir: hilo de correo con el proveedor"],
        "ja": ["要約: 第3四半期 取締役会議事録", "要約: 障害報告書 INC-2291"],
    },
    "support": {
        "en": ["How do I rotate my API key?", "I was charged twice this month", "Can I move my workspace to EU hosting?",
               "SSO login fails with error 4031"],
        "de": ["Wie ändere ich die Rechnungsadresse?", "Warum wurde meine Karte abgelehnt?",
               "Kann ich Nutzer per CSV importieren?"],
        "fr": ["Comment exporter mes données ?", "Ma facture ne correspond pas au devis"],
        "es": ["¿Cómo cancelo mi suscripción?", "No recibo el correo de verificación"],
        "ja": ["APIキーを再発行するには？", "請求書の宛名を変更したい"],
    },
    "search": {
        "en": ["kubernetes ingress timeout 504", "billing export csv", "rotate api key", "sso saml error 4031"],
        "de": ["rechnung exportieren", "zwei faktor authentifizierung zurücksetzen", "datenexport dsgvo"],
        "fr": ["exporter facture pdf", "réinitialiser mot de passe sso"],
        "es": ["exportar facturas", "error 4031 inicio de sesión"],
        "ja": ["請求書 エクスポート", "SSO エラー 4031"],
    },
}

# Responses by feature, quality level and language ("*": any language). Good answers are in the
# request's language; a typical bad one answers a non-English request in English.
OUTPUTS = {
    "summarizer": {
        "good": {
            "en": ['{"title": "Summary", "bullets": ["Main decision and who owns it (section 2)", '
                   '"Numbers and dates as stated (section 3)", "Open questions (section 5)"], "confidence": "high"}'],
            "de": ['{"title": "Zusammenfassung", "bullets": ["Wichtigste Entscheidung (Abschnitt 2)", '
                   '"Zahlen und Termine (Abschnitt 3)"], "confidence": "high"}'],
            "fr": ['{"title": "Résumé", "bullets": ["Décision principale (section 2)", '
                   '"Chiffres et dates (section 3)"], "confidence": "high"}'],
            "es": ['{"title": "Resumen", "bullets": ["Decisión principal (sección 2)", '
                   '"Cifras y fechas (sección 3)"], "confidence": "high"}'],
            "ja": ['{"title": "要約", "bullets": ["主な決定事項（第2節）", "数値と日付（第3節）"], "confidence": "high"}'],
        },
        "fair": {"*": ['{"title": "Summary", "bullets": ["Several topics were discussed", "Some decisions were made"], '
                       '"confidence": "medium"}']},
        "bad": {"*": ['{"title": "Summary", "bullets": ["The document is about a meeting."], "confidence": "low"}',
                      '{"title": "Summary", "bullets": []}']},
    },
    "support": {
        "good": {
            "en": ["Here is how: open Settings, follow the steps in kb/1182 for your plan, and reply here if "
                   "anything does not match what you see."],
            "de": ["So geht's: Öffnen Sie die Einstellungen und folgen Sie den Schritten in kb/1182. "
                   "Melden Sie sich gern, falls etwas nicht passt."],
            "fr": ["Voici comment faire : ouvrez les Paramètres et suivez les étapes de kb/1182. "
                   "Répondez-nous si quelque chose ne correspond pas."],
            "es": ["Así se hace: abra Configuración y siga los pasos de kb/1182. Escríbanos si algo no coincide."],
            "ja": ["設定画面を開き、kb/1182 の手順に従ってください。表示が異なる場合はご返信ください。"],
        },
        "fair": {"*": ["You can probably do this in the settings page. Let me know if it does not work."]},
        "bad": {"*": ["I'm sorry, I can't help with that.", "Please contact support."]},
    },
    "search": {
        "good": {"*": ["[kb/1182, kb/1190, kb/877, docs/api#keys, kb/12]",
                       "[kb/204, kb/210, docs/billing#export, kb/88, kb/301]"]},
        "fair": {"*": ["[kb/877, kb/1182, blog/2023-07, kb/12, kb/90]"]},
        "bad": {"*": ["[blog/2021-03, kb/5, changelog/1.2, kb/999, forum/8812]"]},
    },
}


def output_text(feature: str, score: int, pick: int, language: str = "en") -> str:
    levels = OUTPUTS[feature]["good" if score >= 4 else "fair" if score == 3 else "bad"]
    bank = levels.get(language) or levels.get("*") or levels["en"]
    return bank[pick % len(bank)]
