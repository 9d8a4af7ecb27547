"""L_cycle: G, guided by E(I), must undo its own edit (paper eq. 4)."""

from sagim_tf.losses.content import feature_mse


def cycle_loss(original_features, cycled_features):
    """L_cycle = (1/N_l) sum_l MSE(phi_l(I), phi_l(I_check)), I_check = G(G(I, S), E(I)).

    The same feature distance as the content loss, between the original image and the
    result of the cycle pass (the edited image, re-edited with the original's own
    saliency map as guidance).
    """
    return feature_mse(original_features, cycled_features)
