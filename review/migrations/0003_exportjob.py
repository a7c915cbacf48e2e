# ExportJob, moved here from the relabel app: the same table (relabel_exportjob), the same rows;
# only Django's state changes.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('relabel', '0006_exportjob_moves_to_review'),
        ('review', '0002_reviewtask_open_by_priority'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ExportJob',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='pending', max_length=20)),
                        ('progress', models.PositiveIntegerField(default=0)),
                        ('total', models.PositiveIntegerField(default=0)),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('format', models.CharField(max_length=20)),
                        ('filters', models.JSONField(blank=True, default=dict)),
                        ('directory', models.CharField(blank=True, max_length=500)),
                        ('manifest', models.JSONField(blank=True, default=dict)),
                        ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL)),
                        ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='exports', to='relabel.run')),
                    ],
                    options={
                        'db_table': 'relabel_exportjob',
                        'constraints': [models.CheckConstraint(condition=models.Q(('format__in', ['sft', 'dpo', 'sharegpt', 'verdicts'])), name='export_format_known')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
