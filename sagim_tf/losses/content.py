"""L_content: VGG features of the edited image stay close to the original's (paper eq. 2)."""

from keras import ops


def feature_mse(features_a, features_b):
    """Mean over layers of the mean squared error between matching feature maps.

    Args:
        features_a, features_b: equal-length lists of tensors, layer by layer.
    """
    if len(features_a) != len(features_b) or not features_a:
        raise ValueError(
            f"feature lists must be non-empty and equally long, got {len(features_a)} "
            f"and {len(features_b)}"
        )
    total = 0.0
    for a, b in zip(features_a, features_b):
        total = total + ops.mean(ops.square(ops.cast(a, "float32") - ops.cast(b, "float32")))
    return total / float(len(features_a))


def content_loss(edited_features, original_features):
    """L_content = (1/N_l) sum_l MSE(phi_l(edited), phi_l(original)).

    Args:
        edited_features: phi(I~), a list of N_l feature maps.
        original_features: phi(I), the same layers for the original image.
    """
    return feature_mse(edited_features, original_features)
