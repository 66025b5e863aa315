import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or reset) a staff demo login and print its credentials."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", help="Default: a new random password.")

    def handle(self, *args, username, password, **options):
        password = password or secrets.token_urlsafe(9)
        user, created = get_user_model().objects.get_or_create(username=username)
        # Staff, so the demo also shows the admin; not a superuser.
        user.is_staff = True
        user.set_password(password)
        user.save()
        self._grant_admin_view(user)
        self.stdout.write(self.style.SUCCESS("Demo login" + (" created" if created else " reset")))
        self.stdout.write(f"  username: {username}")
        self.stdout.write(f"  password: {password}")

    def _grant_admin_view(self, user):
        from django.contrib.auth.models import Permission

        user.user_permissions.add(
            *Permission.objects.filter(content_type__app_label="voice", codename__startswith="view_")
        )
