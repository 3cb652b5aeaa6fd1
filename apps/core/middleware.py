from django.contrib.auth.middleware import LoginRequiredMiddleware


class PortalLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Login required on every page (Django's LoginRequiredMiddleware), except the token-authenticated API.

    API calls authenticate inside Django REST framework (token or session) and answer 401/403 there,
    rather than being redirected to the login form.
    """

    API_PREFIXES = ("/api/v1/", "/api/schema/")

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(self.API_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
