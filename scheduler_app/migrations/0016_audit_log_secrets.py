# The audit log (AuditEvent), and secret env values encrypted at rest: the fields that
# hold them become SecretEnvField, then every stored secret is encrypted (the reverse
# writes them back in clear).

import django.db.models.deletion
import django.utils.timezone
import scheduler_app.encryption
from django.conf import settings
from django.db import migrations, models

# The model, its field, and where the env lies in the field's value ("": the value).
ENV_FIELDS = [("Job", "env", ""), ("JobTemplate", "defaults", "env")]


def has_secret(value, key):
    env = value.get(key) if key and isinstance(value, dict) else value
    return isinstance(env, dict) and any(
        isinstance(item, dict) and item.get("secret") for item in env.values()
    )


def encrypt_secrets(apps, schema_editor):
    """Each row with a secret written again: the field encrypts what it writes."""
    for model_name, name, key in ENV_FIELDS:
        model = apps.get_model("scheduler_app", model_name)
        for pk, value in model.objects.values_list("pk", name).iterator():
            if has_secret(value, key):
                model.objects.filter(pk=pk).update(**{name: value})


def decrypt_secrets(apps, schema_editor):
    for model_name, name, key in ENV_FIELDS:
        model = apps.get_model("scheduler_app", model_name)
        for pk, value in model.objects.values_list("pk", name).iterator():
            if has_secret(value, key):
                clear = models.Value(value, output_field=models.JSONField())
                model.objects.filter(pk=pk).update(**{name: clear})


class Migration(migrations.Migration):

    dependencies = [
        ('scheduler_app', '0015_perms_teams'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='job',
            name='env',
            field=scheduler_app.encryption.SecretEnvField(blank=True, default=dict, help_text='Secret values are stored encrypted.'),
        ),
        migrations.AlterField(
            model_name='jobtemplate',
            name='defaults',
            field=scheduler_app.encryption.SecretEnvField(default=dict, env_key='env', help_text='Job fields, as the API takes them.'),
        ),
        migrations.CreateModel(
            name='AuditEvent',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('at', models.DateTimeField(default=django.utils.timezone.now)),
                ('actor_name', models.CharField(blank=True, max_length=150)),
                ('address', models.GenericIPAddressField(blank=True, help_text="The client's.", null=True)),
                ('via', models.CharField(blank=True, help_text="api, admin, or '' (code).", max_length=8)),
                ('action', models.CharField(choices=[('create', 'Create'), ('change', 'Change'), ('delete', 'Delete'), ('run', 'Run'), ('pause', 'Pause'), ('resume', 'Resume'), ('cancel', 'Cancel')], max_length=16)),
                ('object_type', models.CharField(max_length=32)),
                ('object_id', models.PositiveBigIntegerField(blank=True, null=True)),
                ('object_label', models.CharField(blank=True, max_length=200)),
                ('changes', models.JSONField(blank=True, default=list, help_text='[{"field", "before", "after"}], secrets masked.')),
                ('actor', models.ForeignKey(blank=True, db_constraint=False, help_text='None: the system (a command, a task).', null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('job', models.ForeignKey(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='scheduler_app.job')),
                ('owner', models.ForeignKey(blank=True, db_constraint=False, help_text="The object's owner.", null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('team', models.ForeignKey(blank=True, db_constraint=False, help_text="The object's team.", null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='scheduler_app.team')),
            ],
            options={
                'ordering': ['-at', '-id'],
                'indexes': [models.Index(fields=['-at'], name='audit_recent_idx'), models.Index(fields=['job', '-at'], name='audit_job_recent_idx'), models.Index(fields=['owner', '-at'], name='audit_owner_recent_idx'), models.Index(fields=['team', '-at'], name='audit_team_recent_idx')],
            },
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets, elidable=False),
    ]
