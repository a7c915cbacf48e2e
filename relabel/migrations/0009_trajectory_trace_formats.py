# The trace formats production agents are logged in: OpenTelemetry GenAI spans, Langfuse and
# LangSmith exports, Anthropic Messages and OpenAI Responses API conversations.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('relabel', '0008_trajectory_outcome_unknown'),
    ]

    operations = [
        migrations.AlterField(
            model_name='trajectory',
            name='source_format',
            field=models.CharField(choices=[('agenther', 'AgentHER JSON/JSONL'), ('browsergym', 'BrowserGym / WebArena'), ('toolbench', 'ToolBench / StableToolBench'), ('tau-bench', 'tau-bench'), ('messages', 'OpenAI messages / ShareGPT'), ('swe-agent', 'SWE-agent .traj'), ('otel', 'OpenTelemetry GenAI spans'), ('langfuse', 'Langfuse trace export'), ('langsmith', 'LangSmith runs'), ('anthropic', 'Anthropic Messages'), ('openai-responses', 'OpenAI Responses API items')], max_length=20),
        ),
    ]
