# A trajectory whose source recorded no outcome (a production trace, a log without a label) is
# imported with success = NULL (outcome unknown) instead of being called a failure; the upload
# remembers the score that means success (--success-score).

from django.db import migrations, models


def unknown_outcomes(apps, schema_editor):
    """Runs imported before as failures only for want of a label (a message log without one, a
    submitted SWE-agent run: metadata.label "unknown") get the outcome they really have."""
    Trajectory = apps.get_model("relabel", "Trajectory")
    Trajectory.objects.filter(success=False, metadata__label="unknown").update(success=None)


def failures_again(apps, schema_editor):
    Trajectory = apps.get_model("relabel", "Trajectory")
    Trajectory.objects.filter(success__isnull=True).update(success=False)


class Migration(migrations.Migration):

    dependencies = [
        ('relabel', '0007_importjob_lease_until'),
    ]

    operations = [
        migrations.AlterField(
            model_name='trajectory',
            name='success',
            field=models.BooleanField(help_text="True only for the benchmark's full reward; empty when the source recorded no outcome (the detection stage of a model run decides it).", null=True),
        ),
        migrations.RunPython(unknown_outcomes, failures_again),
        migrations.AddField(
            model_name='importjob',
            name='success_score',
            field=models.CharField(blank=True, help_text='NAME>=VALUE: the Langfuse score or LangSmith feedback that means success.', max_length=200),
        ),
    ]
