# ExportJob moved to the review app (exports are made from reviewed data). Only Django's state
# changes: the table relabel_exportjob and its rows stay where they are (review.0003 takes it).

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('relabel', '0005_importjob_mapping'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveConstraint(model_name='exportjob', name='export_format_known'),
                migrations.DeleteModel(name='ExportJob'),
            ],
            database_operations=[],
        ),
    ]
