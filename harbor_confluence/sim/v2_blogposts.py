"""Confluence Cloud v2 blog post routes (BlogPostBulk / BlogPostSingle / BlogPostVersion).

Blog posts behave like pages without a tree: the handlers are the page ones, specialised
by kind. Their titles are unique per space and posting day, not per space.
"""

from __future__ import annotations

from .common import API
from .routes import Context, Router
from .v2_pages import (
    create_container,
    delete_container,
    get_container,
    list_containers,
    list_labels,
    list_versions,
    update_container,
)
from .wire import SimRequest, SimResponse

__all__ = ["register"]


def list_blogposts(req: SimRequest, ctx: Context) -> SimResponse:
    """GET /blogposts: only ``current`` unless ``status`` says otherwise."""
    return list_containers(req, ctx, "blogpost", path=f"{API}/blogposts")


def register(router: Router) -> None:
    one = rf"{API}/blogposts/(?P<id>[^/]+)"
    router.add("GET", rf"{API}/blogposts", "getBlogPosts", list_blogposts)
    router.add("POST", rf"{API}/blogposts", "createBlogPost", create_container("blogpost"))
    router.add("GET", one, "getBlogPostById", get_container("blogpost"))
    router.add("PUT", one, "updateBlogPost", update_container("blogpost"))
    router.add("DELETE", one, "deleteBlogPost", delete_container("blogpost"))
    router.add("GET", rf"{one}/labels", "getBlogPostLabels", list_labels("blogpost"))
    router.add("GET", rf"{one}/versions", "getBlogPostVersions", list_versions("blogpost"))
