"""Tasks beyond forgetting a class or a subset: backdoor removal, segmentation."""
