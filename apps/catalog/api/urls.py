from rest_framework.routers import SimpleRouter

from . import views

router = SimpleRouter()
router.register("teams", views.TeamViewSet)
router.register("environments", views.EnvironmentViewSet)
router.register("locations", views.LocationViewSet)
router.register("services", views.ServiceViewSet)
router.register("pools", views.CapacityPoolViewSet)
router.register("models", views.MLModelViewSet)
router.register("model-versions", views.ModelVersionViewSet)
router.register("products", views.ProductViewSet)

urlpatterns = router.urls
