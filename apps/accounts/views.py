from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View

from apps.core.exceptions import ApplicationError

from .forms import ApiTokenForm, DigestForm
from .models import ApiToken
from .services import api_token_create, api_token_revoke


def _render_account(request, *, token_form: ApiTokenForm | None = None, status: int = 200):
    context = {
        "token_form": token_form or ApiTokenForm(),
        "digest_form": DigestForm(initial={"digest_subscribed": request.user.digest_subscribed}),
        "tokens": request.user.api_tokens.all(),
    }
    return render(request, "accounts/account.html", context, status=status)


class AccountView(View):
    def get(self, request):
        return _render_account(request)


class TokenCreateView(View):
    def post(self, request):
        form = ApiTokenForm(request.POST)
        if not form.is_valid():
            return _render_account(request, token_form=form)
        token, key = api_token_create(user=request.user, **form.cleaned_data)
        messages.success(request, f"Token “{token.name}” created. Copy it now, it is not shown again: {key}")
        return redirect("accounts:account")


class TokenRevokeView(View):
    def post(self, request, pk: int):
        token = get_object_or_404(ApiToken, pk=pk, user=request.user)
        try:
            api_token_revoke(token=token, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Token “{token.name}” revoked.")
        return redirect("accounts:account")


class DigestView(View):
    def post(self, request):
        form = DigestForm(request.POST)
        if form.is_valid():
            request.user.digest_subscribed = form.cleaned_data["digest_subscribed"]
            request.user.save(update_fields=["digest_subscribed"])
            messages.success(request, "Digest preference saved.")
        return redirect("accounts:account")
