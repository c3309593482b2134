# The job's revision, which its RedBeat entry carries (scheduler_app/redbeat.py).

import importlib

from django.db import migrations, models

# SQLite rebuilds the job table to add the field, which its run-histogram triggers (0018)
# name: they are dropped for the rebuild and made again after it, as 0021 does.
fleet = importlib.import_module("scheduler_app.migrations.0021_fleet_nodes")


class Migration(migrations.Migration):

    dependencies = [
        ('scheduler_app', '0021_fleet_nodes'),
    ]

    operations = [
        fleet.DROP_TRIGGERS,
        migrations.AddField(
            model_name='job',
            name='revision',
            field=models.PositiveIntegerField(default=0, editable=False),
        ),
        fleet.MAKE_TRIGGERS,
    ]
